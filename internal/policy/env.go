package policy

import (
	"net/url"
	"strings"
)

// secretEnv is the table of environment variable names that look like
// secrets. A pattern is matched against the upper-cased name: "X*" is a
// prefix, "*X" a suffix, "*X*" a substring, anything else exact.
var secretEnv = []struct {
	pattern, why string
}{
	{"AWS_*", "AWS credentials and profile"},
	{"AZURE_*", "Azure credentials"},
	{"GOOGLE_APPLICATION_CREDENTIALS", "path to a Google service-account key"},
	{"*_TOKEN_*", "looks like a token"},
	{"*TOKEN", "looks like a token"},
	{"*SECRET*", "looks like a secret"},
	{"*_KEY", "looks like a key"},
	{"*_KEY_ID", "looks like a key id"},
	{"*APIKEY*", "looks like an API key"},
	{"*PASSWORD*", "looks like a password"},
	{"*PASSWD*", "looks like a password"},
	{"*_PASS", "looks like a password"},
	{"*_PAT", "looks like a personal access token"},
	{"*_CREDENTIALS", "looks like credentials"},
	{"*_CREDENTIAL", "looks like a credential"},
	{"*_AUTH", "looks like an auth value"},
	{"*_AUTH_*", "looks like an auth value"},
	{"*COOKIE*", "looks like a session cookie"},
	{"SSH_AUTH_SOCK", "host ssh-agent socket"},
	{"SSH_AGENT_PID", "host ssh-agent"},
	{"GPG_AGENT_INFO", "host gpg-agent"},
	{"DBUS_SESSION_BUS_ADDRESS", "host D-Bus session socket"},
	{"KRB5CCNAME", "Kerberos ticket cache"},
	{"VAULT_*", "HashiCorp Vault address and token"},
}

// SecretEnv reports whether the variable name=value looks like a secret and
// should not be passed into a sandbox, with the reason. A value that is a URL
// carrying a password (postgres://u:p@host) is a secret whatever its name.
func SecretEnv(name, value string) (bool, string) {
	upper := strings.ToUpper(name)
	for _, e := range secretEnv {
		if matchEnv(e.pattern, upper) {
			return true, e.why
		}
	}
	if u, err := url.Parse(value); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true, "value is a URL with a password"
		}
	}
	return false, ""
}

func matchEnv(pattern, name string) bool {
	switch {
	case strings.HasPrefix(pattern, "*") && strings.HasSuffix(pattern, "*"):
		return strings.Contains(name, strings.Trim(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(name, pattern[1:])
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(name, pattern[:len(pattern)-1])
	default:
		return name == pattern
	}
}

// SecretEnvPatterns returns the name patterns, for documentation.
func SecretEnvPatterns() []string {
	out := make([]string, len(secretEnv))
	for i, e := range secretEnv {
		out[i] = e.pattern
	}
	return out
}

// SetEnv sets each NAME=VALUE of set in env, replacing what was there, and
// returns the result (set's entries last, in their order).
func SetEnv(env, set []string) []string {
	names := map[string]bool{}
	for _, kv := range set {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = true
	}
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !names[name] {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}
