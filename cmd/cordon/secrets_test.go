package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/tlsca"
)

func TestParseSecret(t *testing.T) {
	t.Setenv("CORDON_T_TOKEN", "a-long-enough-token-value")
	t.Setenv("CORDON_T_SHORT", "short")
	t.Setenv("CORDON_T_NL", "a-long-enough\r\nX-Evil: 1")
	in, err := parseSecret("CORDON_T_TOKEN=api.example.com, *.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if in.Value != "a-long-enough-token-value" || !strings.HasPrefix(in.Placeholder, placeholderPrefix) || len(in.Placeholder) != len(placeholderPrefix)+32 || len(in.Hosts) != 2 {
		t.Errorf("parseSecret: %+v", in)
	}
	if again, _ := parseSecret("CORDON_T_TOKEN=api.example.com"); again.Placeholder == in.Placeholder {
		t.Error("two runs' placeholders are the same")
	}
	for s, want := range map[string]string{
		"CORDON_T_TOKEN":                  "want NAME=HOST",
		"CORDON_T_TOKEN=":                 "want NAME=HOST",
		"=api.example.com":                "want NAME=HOST",
		"1BAD=api.example.com":            "not a variable name",
		"CORDON_T_UNSET=api.example.com":  "is not set in cordon's environment",
		"CORDON_T_SHORT=api.example.com":  "too short",
		"CORDON_T_NL=api.example.com":     "line break",
		"CORDON_T_TOKEN=10.0.0.0/8":       "is a range",
		"CORDON_T_TOKEN=api.example.com/": "invalid rule",
	} {
		if _, err := parseSecret(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseSecret(%q) = %v, want an error saying %q", s, err, want)
		} else if strings.Contains(err.Error(), "a-long-enough") {
			t.Errorf("parseSecret(%q): the error shows the value: %v", s, err)
		}
	}
}

// TestPrepareWatch: the host's credentials are watched (but not a value
// the user passes in or injects), the injected secret's placeholder goes
// inside and its value does not, and inspection brings a CA and the trust
// store the sandbox sees.
func TestPrepareWatch(t *testing.T) {
	home := t.TempDir()
	const hostKey = "host-aws-secret-0123456789abcdef"
	const passedKey = "passed-in-on-purpose-0123456789"
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	creds := "[default]\naws_access_key_id = AKIAHOSTKEYID0123456\naws_secret_access_key = " + hostKey + "\n[other]\naws_secret_access_key = " + passedKey + "\n"
	if err := os.WriteFile(filepath.Join(home, ".aws", "credentials"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CORDON_T_API_TOKEN", "the-injected-value-0123456789")
	t.Setenv("CORDON_T_PASSED", passedKey)
	p := policy.Default(t.TempDir(), home, "")
	p.Network.Secrets = []string{"CORDON_T_API_TOKEN=api.example.com"}
	p.Network.Inspect = []string{"registry.example.org GET /"}
	w, err := prepareWatch(p, home, []string{"CORDON_T_API_TOKEN: looks like a secret"}, map[string]bool{"CORDON_T_PASSED": true}, []string{"canary-token-0123456789"}, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	if tok := w.tokens[hostKey]; tok.Kind != gateway.TokenSecret || tok.Name != "~/.aws/credentials" {
		t.Errorf("the host's AWS key: %+v, want a watched secret from ~/.aws/credentials", tok)
	}
	if _, ok := w.tokens[passedKey]; ok {
		t.Error("a value passed in with --env is watched as a leak")
	}
	if tok := w.tokens["the-injected-value-0123456789"]; tok.Kind != gateway.TokenInjected {
		t.Errorf("the injected value: %+v", tok)
	}
	if len(w.inject) != 1 || w.tokens[w.inject[0].Placeholder].Kind != gateway.TokenPlaceholder {
		t.Fatalf("inject %+v", w.inject)
	}
	if w.scanner == nil {
		t.Fatal("no scanner")
	}
	for _, tok := range []string{"canary-token-0123456789", hostKey, w.inject[0].Placeholder, "the-injected-value-0123456789"} {
		if _, ok := w.scanner.ScanString("x " + tok + " y"); !ok {
			t.Errorf("the scanner does not find %q", tok)
		}
	}
	env := strings.Join(w.env, "\n")
	if !strings.Contains(env, "CORDON_T_API_TOKEN="+w.inject[0].Placeholder) || strings.Contains(env, "the-injected-value") {
		t.Errorf("env inside: %s", env)
	}
	path, system, err := tlsca.SystemBundle()
	if err != nil {
		t.Skipf("no system trust store here: %v", err)
	}
	for _, v := range trustVars {
		if !strings.Contains(env, v+"="+path+"\n") && !strings.HasSuffix(env, v+"="+path) {
			t.Errorf("%s does not point at %s", v, path)
		}
	}
	bundle := string(w.files[path])
	if w.ca == nil || !strings.HasPrefix(bundle, string(system)) || !strings.HasSuffix(bundle, string(w.ca.CertPEM())) {
		t.Errorf("the trust store inside is not the host's plus the run's CA")
	}
	if _, err := w.ca.Leaf("registry.example.org"); err != nil {
		t.Errorf("the CA cannot vouch for an inspected host: %v", err)
	}
	if _, err := w.ca.Leaf("api.example.com"); err != nil {
		t.Errorf("the CA cannot vouch for a secret's host: %v", err)
	}
	if _, err := w.ca.Leaf("elsewhere.example.net"); err == nil {
		t.Error("the CA vouches for a host nothing inspects")
	}

	// Nothing inspected: no CA, no trust store changed.
	p.Network.Secrets, p.Network.Inspect = nil, nil
	w, err = prepareWatch(p, home, nil, nil, nil, func(string, ...any) {})
	if err != nil || w.ca != nil || len(w.files) != 0 || len(w.env) != 0 {
		t.Errorf("without inspection: ca %v, files %d, env %q, %v", w.ca, len(w.files), w.env, err)
	}
}
