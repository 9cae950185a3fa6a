package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/policy"
)

func TestProxyEnv(t *testing.T) {
	env := policy.SetEnv([]string{"HTTP_PROXY=http://corp:8080", "PATH=/bin", "https_proxy=http://corp:8080"},
		gateway.ProxyEnv("/usr/local/bin/cordon", "-Xmx1g"))
	get := func(name string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				return v
			}
		}
		return "<unset>"
	}
	for name, want := range map[string]string{
		"HTTP_PROXY":        "http://127.0.0.1:3128",
		"http_proxy":        "http://127.0.0.1:3128",
		"HTTPS_PROXY":       "http://127.0.0.1:3128",
		"https_proxy":       "http://127.0.0.1:3128",
		"ALL_PROXY":         "socks5h://127.0.0.1:1080",
		"NO_PROXY":          "localhost,127.0.0.1,::1",
		"PATH":              "/bin",
		"GIT_SSH_COMMAND":   "ssh -o ProxyCommand='/usr/local/bin/cordon connect %h %p'",
		"JAVA_TOOL_OPTIONS": "-Xmx1g -Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts=localhost|127.0.0.1",
	} {
		if got := get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	seen := map[string]bool{}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if seen[name] {
			t.Errorf("%s set twice in %q", name, env)
		}
		seen[name] = true
	}
	// A path a shell would split is not put in a command line.
	if env := gateway.ProxyEnv("/opt/my tools/cordon", ""); slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GIT_SSH_COMMAND=") }) {
		t.Errorf("GIT_SSH_COMMAND set for a path with a space: %q", env)
	}
}
