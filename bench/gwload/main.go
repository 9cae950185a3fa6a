// Command gwload is the origin server of bench/gateway.sh: an HTTP/1.1
// server on loopback that answers every GET with -size bytes of zeros and
// a Content-Length, written from one buffer in large writes, so that
// loopback, not the server, is what limits a download.
//
//	gwload -listen 127.0.0.1:0 -size 1073741824 -addr-file FILE
//
// It writes the address it listens on to -addr-file once it accepts, and
// serves until it is killed or its parent exits (PR_SET_PDEATHSIG), so a
// benchmark script that dies leaves no server behind.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	size := flag.Int64("size", 1<<30, "bytes in each answer")
	addrFile := flag.String("addr-file", "", "write the address listened on to this file")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("gwload: ")

	// Die with the script that started us.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0); err != nil {
		log.Fatal(err)
	}
	if os.Getppid() == 1 {
		os.Exit(1)
	}

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		log.Fatalf("%s is not loopback", l.Addr())
	}
	buf := make([]byte, 1<<20)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(*size, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.Method == http.MethodHead {
			return
		}
		for left := *size; left > 0; {
			n := min(left, int64(len(buf)))
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			left -= n
		}
	})
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Fprintf(os.Stderr, "gwload: serving %d bytes at http://%s/\n", *size, l.Addr())
	log.Fatal(http.Serve(l, h))
}
