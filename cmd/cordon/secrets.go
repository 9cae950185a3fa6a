package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/cordon-sandbox/cordon/internal/canary"
	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/secrets"
	"github.com/cordon-sandbox/cordon/internal/tlsca"
)

// watch is what one run's gateway looks for in what leaves, and what it
// swaps in: every token (canaries, this host's credentials, injected
// secrets' placeholders and values) in one scanner, token formats, the
// secrets to inject, and the inspection that injection rides on.
type watch struct {
	scanner *canary.Scanner // nil: no token to watch
	tokens  map[string]gateway.Token
	formats func([]byte, string) (string, bool)
	inject  []gateway.Injection
	inspect []gateway.InspectRule
	allow   []string // hosts of injected secrets, allowed by naming them

	ca    *tlsca.CA
	env   []string          // NAME=VALUE to set inside: placeholders, trust store
	files map[string][]byte // the trust store the sandbox sees

	hostSecrets int // credential values of this host watched for
}

// trustVars are the variables that name a CA bundle for the tools that
// do not read the system's (or read theirs first).
var trustVars = []string{
	"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
	"GIT_SSL_CAINFO", "PIP_CERT", "npm_config_cafile", "CARGO_HTTP_CAINFO", "AWS_CA_BUNDLE",
}

// placeholderPrefix begins every placeholder, so a user who sees one in a
// tool's error knows what it is.
const placeholderPrefix = "cordon-placeholder-"

// prepareWatch reads the network policy's secrets, inspections and
// allow-list, finds this host's credentials (in the masked stores under
// home, and the variables not passed in, dropped), and makes the run's CA
// if anything is inspected. canaries are the decoys' tokens.
func prepareWatch(p policy.Policy, home string, dropped []string, passed map[string]bool, canaries []string, logf func(string, ...any)) (*watch, error) {
	w := &watch{tokens: map[string]gateway.Token{}, files: map[string][]byte{}}
	for _, s := range p.Network.Inspect {
		ir, err := gateway.ParseInspect(s)
		if err != nil {
			return nil, fmt.Errorf("--inspect: %w", err)
		}
		w.inspect = append(w.inspect, ir)
	}
	injected := map[string]bool{}
	for _, s := range p.Network.Secrets {
		in, err := parseSecret(s)
		if err != nil {
			return nil, err
		}
		if injected[in.Name] {
			return nil, fmt.Errorf("--secret %s: named twice; list every host in one --secret %s=HOST1,HOST2", in.Name, in.Name)
		}
		injected[in.Name] = true
		w.inject = append(w.inject, in)
		w.tokens[in.Placeholder] = gateway.Token{Kind: gateway.TokenPlaceholder, Name: in.Name}
		w.tokens[in.Value] = gateway.Token{Kind: gateway.TokenInjected, Name: in.Name}
		w.env = append(w.env, in.Name+"="+in.Placeholder)
		_, hosts, _ := strings.Cut(s, "=")
		w.allow = append(w.allow, strings.Split(hosts, ",")...)
	}

	// The host's own credentials: what sits in the masked stores, and
	// the variables cordon did not pass in. A value the user passed in on
	// purpose (--env), or injects, is not one to block.
	var env []string
	for _, d := range dropped {
		name, _, _ := strings.Cut(d, ":")
		if !injected[name] {
			env = append(env, name+"="+os.Getenv(name))
		}
	}
	vals, skipped := secrets.Discover(home, env)
	if skipped > 0 {
		logf("%d credential files or values of this host not watched for (unreadable, over 1 MiB, past the 200th file, malformed, or shorter than %d bytes)", skipped, secrets.MinLen)
	}
	for _, v := range vals {
		if _, ok := w.tokens[v.Value]; ok || passedValue(passed, v.Value) {
			continue
		}
		w.tokens[v.Value] = gateway.Token{Kind: gateway.TokenSecret, Name: v.Where}
		w.hostSecrets++
	}
	logf("watching for %d credential values of this host", w.hostSecrets)

	all := append([]string(nil), canaries...)
	for t := range w.tokens {
		all = append(all, t)
	}
	if len(all) > 0 {
		// Its tables are built by the first scan: a run that makes no
		// connection never pays for them.
		sc, err := canary.New(all)
		if err != nil {
			return nil, fmt.Errorf("watching the run's tokens: %w", err)
		}
		w.scanner = sc
	}

	var allows []secrets.Allow
	for _, s := range p.Network.AllowSecrets {
		a, err := secrets.ParseAllow(s)
		if err != nil {
			return nil, fmt.Errorf("--allow-secret %s: %w", s, err)
		}
		allows = append(allows, a)
	}
	det := secrets.NewDetector(allows)
	w.formats = func(b []byte, host string) (string, bool) {
		f, ok := det.Find(b, host)
		return f.Rule, ok
	}

	if len(w.inspect) > 0 || len(w.inject) > 0 {
		if err := w.makeCA(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// passedValue reports whether a value is one the user passed in on
// purpose with --env.
func passedValue(passed map[string]bool, v string) bool {
	for name := range passed {
		if os.Getenv(name) == v {
			return true
		}
	}
	return false
}

// parseSecret reads NAME=HOST1,HOST2 and takes the value of NAME from
// cordon's environment.
func parseSecret(s string) (gateway.Injection, error) {
	name, hosts, ok := strings.Cut(s, "=")
	if !ok || name == "" || hosts == "" {
		return gateway.Injection{}, fmt.Errorf("--secret %q: want NAME=HOST[,HOST...], e.g. GITHUB_TOKEN=api.github.com", s)
	}
	if !validEnvName(name) {
		return gateway.Injection{}, fmt.Errorf("--secret %s: not a variable name", name)
	}
	value, set := os.LookupEnv(name)
	if !set || value == "" {
		return gateway.Injection{}, fmt.Errorf("--secret %s: $%s is not set in cordon's environment; set it there, and the sandbox gets a placeholder", name, name)
	}
	if len(value) < canary.MinTokenLen {
		return gateway.Injection{}, fmt.Errorf("--secret %s: the value is shorter than %d bytes, too short to watch for reliably", name, canary.MinTokenLen)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return gateway.Injection{}, fmt.Errorf("--secret %s: the value holds a line break or NUL, which cannot go in a header", name)
	}
	in := gateway.Injection{Name: name, Value: value}
	for _, h := range strings.Split(hosts, ",") {
		r, err := gateway.ParseRule(strings.TrimSpace(h))
		if err != nil {
			return gateway.Injection{}, fmt.Errorf("--secret %s: %w", name, err)
		}
		if r.IsAddr() && r.Prefix().Bits() != r.Prefix().Addr().BitLen() {
			return gateway.Injection{}, fmt.Errorf("--secret %s: %s is a range; name hosts or single addresses", name, h)
		}
		in.Hosts = append(in.Hosts, r)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return gateway.Injection{}, fmt.Errorf("--secret %s: making a placeholder: %w", name, err)
	}
	in.Placeholder = placeholderPrefix + hex.EncodeToString(b)
	return in, nil
}

func validEnvName(s string) bool {
	for i, c := range s {
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// makeCA makes the run's CA, constrained to the inspected destinations,
// and the trust store the sandbox sees: the host's, plus the CA.
func (w *watch) makeCA() error {
	var c tlsca.Constraints
	add := func(r gateway.Rule) {
		if r.IsAddr() {
			c.IPs = append(c.IPs, r.Prefix())
		} else {
			c.DNS = append(c.DNS, r.Name())
		}
	}
	for _, ir := range w.inspect {
		add(ir.Host)
	}
	for _, in := range w.inject {
		for _, h := range in.Hosts {
			add(h)
		}
	}
	c.IPs = dedupPrefixes(c.IPs)
	ca, err := tlsca.New(c)
	if err != nil {
		return fmt.Errorf("making the run's CA for TLS inspection: %w", err)
	}
	path, system, err := tlsca.SystemBundle()
	if err != nil {
		return fmt.Errorf("TLS inspection: %w (the sandbox must be shown a trust store that holds the run's CA)", err)
	}
	w.ca = ca
	w.files[path] = ca.Bundle(system)
	for _, v := range trustVars {
		w.env = append(w.env, v+"="+path)
	}
	return nil
}

func dedupPrefixes(ps []netip.Prefix) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// reportSecret is the gateway's OnSecret: a line on cordon's stderr for
// each request blocked for carrying a credential, a placeholder where it
// does not belong, or a token format.
type secretReport struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *secretReport) onSecret(proto, hostport string, t *gateway.Tripped) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := hostport + " " + t.Error()
	if s.seen[key] {
		return
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[key] = true
	fmt.Fprintf(os.Stderr, "cordon: blocked %s toward %s: %s\n", proto, hostport, t.Error())
}
