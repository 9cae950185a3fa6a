package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/internal/gateway"
)

func newConnectCmd() *cobra.Command {
	var proxyAddr string
	cmd := &cobra.Command{
		Use:   "connect HOST PORT",
		Short: "Inside a sandbox: relay stdin and stdout to HOST:PORT through the gateway",
		Long: `Open a connection to HOST:PORT through the egress gateway and relay it over
stdin and stdout, for programs that take a command as their transport. It is
meant to run inside "cordon run", where the gateway listens on
127.0.0.1:3128; the destination must be allowed by the run's --allow-domain
rules. ssh uses it as its ProxyCommand:

  ssh -o ProxyCommand='cordon connect %h %p' git@example.com

Inside "cordon run", GIT_SSH_COMMAND is set this way already, so git over ssh
works as is when the host is allowed (--allow-domain example.com:22).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConnect(proxyAddr, args[0], args[1], os.Stdin, os.Stdout)
		},
	}
	cmd.Flags().StringVar(&proxyAddr, "proxy", net.JoinHostPort("127.0.0.1", strconv.Itoa(gateway.HTTPPort)), "the gateway's HTTP proxy `ADDRESS`")
	return cmd
}

// runConnect asks the proxy for a tunnel with CONNECT and relays it.
func runConnect(proxyAddr, host, port string, in io.Reader, out io.Writer) error {
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q: not a TCP port (1-65535)", port)
	}
	target := net.JoinHostPort(host, port)
	c, err := net.DialTimeout("tcp", proxyAddr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("reaching the gateway at %s (is this inside cordon run?): %w", proxyAddr, err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		return fmt.Errorf("asking the gateway for %s: %w", target, err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return fmt.Errorf("reading the gateway's answer for %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return fmt.Errorf("the gateway refused %s: %s: %s", target, resp.Status, trimNL(string(body)))
	}
	go func() {
		io.Copy(c, in)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	if _, err := io.Copy(out, br); err != nil {
		return fmt.Errorf("relaying from %s: %w", target, err)
	}
	return nil
}

func trimNL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
