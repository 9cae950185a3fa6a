// Command gwload is the origin server of bench/gateway.sh and
// bench/inspect.sh: an HTTP/1.1 server on loopback that answers every GET
// with -size bytes of zeros and a Content-Length, written from one buffer
// in large writes, so that loopback, not the server, is what limits a
// download.
//
//	gwload -listen 127.0.0.1:0 -size 1073741824 -addr-file FILE
//	gwload -listen 127.0.0.1:0 -size 1024 -addr-file FILE -tls DIR -close-path /close
//
// With -tls DIR it serves HTTPS (HTTP/1.1 only, no h2) instead, with a
// certificate for the IP address it listens on, signed by a CA it makes
// at start (ECDSA P-256, in memory only) and whose certificate it writes
// to DIR/ca.pem before the address file, for clients to verify it with.
// With -close-path PATH, a request for exactly PATH is answered with
// "Connection: close" and the connection then closed, so that a client,
// or a proxy in between, opens a new one for the next request.
//
// It writes the address it listens on to -addr-file once it accepts, and
// serves until it is killed or its parent exits (PR_SET_PDEATHSIG), so a
// benchmark script that dies leaves no server behind.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	size := flag.Int64("size", 1<<30, "bytes in each answer")
	addrFile := flag.String("addr-file", "", "write the address listened on to this file")
	tlsDir := flag.String("tls", "", "serve HTTPS, with a CA made at start whose certificate goes to `DIR`/ca.pem")
	closePath := flag.String("close-path", "", "answer requests for this `PATH` with Connection: close")
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
	scheme := "http"
	if *tlsDir != "" {
		cfg, err := tlsConfig(l.Addr().(*net.TCPAddr).IP, *tlsDir)
		if err != nil {
			log.Fatal(err)
		}
		l = tls.NewListener(l, cfg)
		scheme = "https"
	}
	buf := make([]byte, 1<<20)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *closePath != "" && r.URL.Path == *closePath {
			w.Header().Set("Connection", "close")
		}
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
	fmt.Fprintf(os.Stderr, "gwload: serving %d bytes at %s://%s/\n", *size, scheme, l.Addr())
	log.Fatal(http.Serve(l, h))
}

// tlsConfig makes a CA and a leaf for ip signed by it, writes the CA's
// certificate to dir/ca.pem and returns a server config with the leaf,
// HTTP/1.1 only.
func tlsConfig(ip net.IP, dir string) (*tls.Config, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gwload benchmark CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: ip.String()},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{ip},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	pemCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	tmp := filepath.Join(dir, "ca.pem.tmp")
	if err := os.WriteFile(tmp, pemCA, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "ca.pem")); err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}},
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}, nil
}
