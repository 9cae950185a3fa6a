//go:build cordon_testhooks

package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// Built only with -tags cordon_testhooks, for the integration tests: the
// gateway resolves the names in CORDON_TEST_HOSTS ("name=addr,name=addr")
// to the addresses given, and nothing else, so tests can point real names
// at their loopback servers. A release binary has no such hook.
func init() {
	spec := os.Getenv("CORDON_TEST_HOSTS")
	if spec == "" {
		return
	}
	hosts := staticHosts{}
	for _, kv := range strings.Split(spec, ",") {
		name, addr, ok := strings.Cut(kv, "=")
		a, err := netip.ParseAddr(addr)
		if !ok || err != nil {
			fmt.Fprintf(os.Stderr, "cordon: CORDON_TEST_HOSTS: bad entry %q\n", kv)
			os.Exit(2)
		}
		hosts[strings.ToLower(name)] = append(hosts[strings.ToLower(name)], a)
	}
	testResolver = hosts
}

type staticHosts map[string][]netip.Addr

func (h staticHosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := h[strings.TrimSuffix(host, ".")]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host (test resolver)", Name: host, IsNotFound: true}
}
