package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// stores maps a mask of policy.Masks, as the table writes it, to the
// reader of its format. A reader is given the mask's path and reports
// what it finds with r.add. Masks missing here are not read: see the
// package comment, and notRead in stores_test.go, for why.
var stores = map[string]func(r *reader, mask string){
	"~/.aws":                               awsDir,
	"~/.config/gcloud":                     gcloudDir,
	"~/.azure":                             azureDir,
	"~/.kube":                              kubeDir,
	"~/.docker/config.json":                jsonKeys("auth", "identitytoken", "registrytoken"),
	"~/.oci":                               ociDir,
	"~/.config/doctl":                      doctlDir,
	"~/.terraform.d/credentials.tfrc.json": jsonKeys("token"),
	"~/.ssh":                               sshDir,
	"~/.netrc":                             netrcFile,
	"~/.git-credentials":                   urlLines,
	"~/.config/git/credentials":            urlLines,
	"~/.config/gh":                         ghDir,
	"~/.config/hub":                        yamlKeys("oauth_token"),
	"~/.npmrc":                             npmrc,
	"~/.yarnrc.yml":                        yamlKeys("npmAuthToken", "npmAuthIdent"),
	"~/.pypirc":                            pypirc,
	"~/.config/pip/pip.conf":               pipConf,
	"~/.cargo/credentials":                 cargoCredentials,
	"~/.cargo/credentials.toml":            cargoCredentials,
	"~/.gem/credentials":                   gemCredentials,
	"~/.m2/settings.xml":                   mavenSettings,
	"~/.gradle/gradle.properties":          gradleProperties,
	"~/.config/anthropic":                  anthropicDir,
	"~/.vault-token":                       wholeFile("token"),
	"/etc/ssh/ssh_host_rsa_key":            keyFile,
	"/etc/ssh/ssh_host_ecdsa_key":          keyFile,
	"/etc/ssh/ssh_host_ed25519_key":        keyFile,
}

// jsonKeys reads a JSON file and takes the string values of keys, at any
// depth.
func jsonKeys(keys ...string) func(r *reader, p string) {
	want := set(keys...)
	return func(r *reader, p string) {
		if b, ok := r.read(p); ok {
			r.jsonValues(b, p, func(key string) bool { return want[key] })
		}
	}
}

// yamlKeys reads a YAML file and takes the scalar values of keys, at any
// depth.
func yamlKeys(keys ...string) func(r *reader, p string) {
	want := set(keys...)
	return func(r *reader, p string) {
		if b, ok := r.read(p); ok {
			r.yamlValues(b, p, func(path []string) bool { return want[path[len(path)-1]] })
		}
	}
}

// wholeFile takes a file's content, trimmed, as one value.
func wholeFile(what string) func(r *reader, p string) {
	return func(r *reader, p string) {
		if b, ok := r.read(p); ok {
			r.add(string(b), p, what)
		}
	}
}

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// awsDir reads the shared credentials and config files, and the caches of
// the CLI's assumed roles (cli/cache) and of SSO logins (sso/cache).
func awsDir(r *reader, dir string) {
	keys := set("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_security_token")
	for _, name := range []string{"credentials", "config"} {
		p := path.Join(dir, name)
		if b, ok := r.read(p); ok {
			for _, kv := range parseINI(b) {
				if keys[kv.key] {
					r.add(kv.value, p, kv.key)
				}
			}
		}
	}
	cached := set("AccessKeyId", "SecretAccessKey", "SessionToken", "accessToken", "refreshToken", "clientSecret")
	for _, cache := range []string{"cli/cache", "sso/cache"} {
		r.walk(path.Join(dir, cache), 0, func(p string) {
			if strings.HasSuffix(p, ".json") {
				if b, ok := r.read(p); ok {
					r.jsonValues(b, p, func(key string) bool { return cached[key] })
				}
			}
		})
	}
}

// publicClientSecrets are the OAuth client secrets that gcloud itself
// ships, for its own client and for application default credentials. Every
// gcloud user's files hold them, and gcloud sends them on every refresh:
// they are published, not secret.
var publicClientSecrets = set("d-FL95Q19q7MQmFpd7hHD0Ty", "ZmssLNjJy2998hD4CTg2ejr2")

// gcloudDir reads the application default credentials and each account's
// legacy adc.json (user or service account JSON). credentials.db and
// access_tokens.db are SQLite databases and are not read, nor is the rest
// of the directory (logs, configurations).
func gcloudDir(r *reader, dir string) {
	keys := set("client_secret", "refresh_token", "private_key")
	adc := func(p string) {
		if b, ok := r.read(p); ok {
			r.jsonValues(b, p, func(key string) bool { return keys[key] })
		}
	}
	adc(path.Join(dir, "application_default_credentials.json"))
	legacy := path.Join(dir, "legacy_credentials")
	r.walk(legacy, 1, func(p string) {
		if path.Base(p) == "adc.json" && path.Dir(path.Dir(p)) == legacy {
			adc(p)
		}
	})
}

// azureDir reads the Azure CLI's token caches: accessTokens.json (before
// CLI 2.30), msal_token_cache.json (MSAL's plain-text cache on Linux) and
// service_principal_entries.json.
func azureDir(r *reader, dir string) {
	keys := set("secret", "access_token", "refresh_token", "accessToken", "refreshToken", "client_secret")
	for _, name := range []string{"accessTokens.json", "msal_token_cache.json", "service_principal_entries.json"} {
		p := path.Join(dir, name)
		if b, ok := r.read(p); ok {
			r.jsonValues(b, p, func(key string) bool { return keys[key] })
		}
	}
}

// kubeDir reads the kubeconfigs at the top of ~/.kube (config, and any
// others kept there), not the discovery and HTTP caches below it. A
// client-key-data is base64 of a PEM key: the key's run (see keyValue) is
// reported, which the canary scanner finds in the base64 too.
func kubeDir(r *reader, dir string) {
	keys := set("token", "password", "client-key-data", "access-token", "refresh-token", "id-token", "client-secret")
	r.walk(dir, 0, func(p string) {
		b, ok := r.read(p)
		if !ok {
			return
		}
		r.yamlValues(b, p, func(path []string) bool { return keys[path[len(path)-1]] })
	})
}

// ociDir reads the OCI CLI's config: each profile's pass_phrase, and the
// key_file and security_token_file it names when they are inside ~/.oci
// (a key elsewhere is not a credential store of the table).
func ociDir(r *reader, dir string) {
	p := path.Join(dir, "config")
	b, ok := r.read(p)
	if !ok {
		return
	}
	for _, kv := range parseINI(b) {
		switch kv.key {
		case "pass_phrase":
			r.add(kv.value, p, "pass_phrase")
		case "key_file", "security_token_file":
			f, ok := r.inside(kv.value, dir)
			if !ok {
				continue
			}
			if kv.key == "key_file" {
				keyFile(r, f)
			} else {
				wholeFile("security token")(r, f)
			}
		}
	}
}

// inside returns the path file (absolute or starting with ~/), spelt as
// policy.Masks spells dir, if it lies inside dir.
func (r *reader) inside(file, dir string) (string, bool) {
	file = strings.TrimSpace(file)
	if strings.HasPrefix(file, "~/") {
		file = path.Clean(file)
	} else if home := filepath.ToSlash(r.home); strings.HasPrefix(file, home+"/") {
		file = "~" + path.Clean(strings.TrimPrefix(file, home))
	}
	rel, ok := strings.CutPrefix(file, dir+"/")
	if !ok || rel == "" || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return file, true
}

// doctlDir reads doctl's config.yaml: access-token, and the tokens of
// auth-contexts by context name.
func doctlDir(r *reader, dir string) {
	p := path.Join(dir, "config.yaml")
	if b, ok := r.read(p); ok {
		r.yamlValues(b, p, func(path []string) bool {
			n := len(path)
			return path[n-1] == "access-token" || n >= 2 && path[n-2] == "auth-contexts"
		})
	}
}

// sshDir reads every file under ~/.ssh, to two levels, for PEM private
// keys: keys are named by the user, not by the tool.
func sshDir(r *reader, dir string) {
	r.walk(dir, maxDepth, func(p string) {
		if strings.HasSuffix(p, ".pub") || path.Base(p) == "known_hosts" || path.Base(p) == "authorized_keys" {
			return // public by design, and not worth a read of the budget
		}
		keyFile(r, p)
	})
}

// keyFile reports the private keys of a PEM file; a file with none says
// nothing.
func keyFile(r *reader, p string) {
	b, ok := r.read(p)
	if !ok {
		return
	}
	for rest := b; ; {
		v, more, found, ok := nextKey(rest)
		if !found {
			return
		}
		if ok {
			r.add(v, p, "private key")
		} else {
			r.skipped++
		}
		rest = more
	}
}

// ghDir reads gh's hosts.yml: oauth_token of each host, and of each user
// of a host (gh 2.40's multiple accounts).
func ghDir(r *reader, dir string) {
	yamlKeys("oauth_token")(r, path.Join(dir, "hosts.yml"))
}

// urlLines reads git's credential store: one URL a line, whose password
// (percent-decoded) is the secret.
func urlLines(r *reader, p string) {
	b, ok := r.read(p)
	if !ok {
		return
	}
	for _, line := range lines(b) {
		r.urlPassword(line, p)
	}
}

// npmrc takes the values of _authToken, _auth (and the password inside it)
// and _password, alone or scoped to a registry
// (//registry.npmjs.org/:_authToken=...). A value that is an environment
// reference (${NPM_TOKEN}) is not a secret itself.
func npmrc(r *reader, p string) {
	b, ok := r.read(p)
	if !ok {
		return
	}
	for _, kv := range parseNpmrc(b) {
		for _, s := range []string{"_authtoken", "_auth", "_password"} {
			if kv.key == s || strings.HasSuffix(kv.key, ":"+s) {
				if v := unquote(kv.value); !strings.HasPrefix(v, "${") {
					r.value(v, p, s)
				}
			}
		}
	}
}

func pypirc(r *reader, p string) {
	b, ok := r.read(p)
	if !ok {
		return
	}
	for _, kv := range parseINI(b) {
		if kv.key == "password" {
			r.add(kv.value, p, "password")
		}
	}
}

// pipConf takes the passwords of the index URLs; extra-index-url may hold
// several, one a line or separated by spaces.
func pipConf(r *reader, p string) {
	b, ok := r.read(p)
	if !ok {
		return
	}
	for _, kv := range parseINI(b) {
		if kv.key == "index-url" || kv.key == "extra-index-url" || kv.key == "index_url" || kv.key == "extra_index_url" {
			for _, u := range strings.Fields(kv.value) {
				r.urlPassword(u, p)
			}
		}
	}
}

// cargoCredentials takes token (and the secret-key of asymmetric tokens)
// of [registry] and of each [registries.NAME].
func cargoCredentials(r *reader, p string) {
	b, ok := r.read(p)
	if !ok {
		return
	}
	for _, kv := range parseTOML(b) {
		if kv.key == "token" || kv.key == "secret-key" {
			r.add(kv.value, p, kv.key)
		}
	}
}

// gemCredentials is a YAML map from a host (or :rubygems_api_key) to its
// key: every value is a secret.
func gemCredentials(r *reader, p string) {
	if b, ok := r.read(p); ok {
		r.yamlValues(b, p, func([]string) bool { return true })
	}
}

// anthropicDir reads the files under ~/.config/anthropic: a JSON file's
// string values under key-like names (api_key, apiKey, key, token,
// access_token, ...), and a file that holds one word, as a key.
func anthropicDir(r *reader, dir string) {
	r.walk(dir, maxDepth, func(p string) {
		b, ok := r.read(p)
		if !ok {
			return
		}
		t := bytes.TrimSpace(b)
		if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			r.jsonValues(b, p, keyLike)
			return
		}
		if len(t) > 0 && len(bytes.Fields(t)) == 1 {
			r.add(string(t), p, "key")
		}
	})
}

// keyLike reports whether a JSON key names a secret, ignoring case, '_'
// and '-': key, apiKey, api_key, token, access-token, secret, password...
func keyLike(key string) bool {
	k := strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(key))
	return k == "key" || k == "password" || k == "secret" ||
		strings.HasSuffix(k, "apikey") || strings.HasSuffix(k, "token") || strings.HasSuffix(k, "secretkey") || strings.HasSuffix(k, "secret")
}

// jsonValues takes the string values of the keys that want accepts, at any
// depth of JSON b. A value that holds a PEM private key is reported as the
// key's run (see keyValue).
func (r *reader) jsonValues(b []byte, p string, want func(key string) bool) {
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		r.skipped++
		return
	}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				walk(k, v[k])
			}
		case []any:
			for _, e := range v {
				walk(key, e)
			}
		case string:
			if key != "" && want(key) {
				r.value(v, p, key)
			}
		}
	}
	walk("", doc)
}

// value reports a value found under key, or the run of the private key it
// holds, or, for a kubeconfig's base64 *-data, of the key it encodes; and
// the password inside a Basic auth value.
func (r *reader) value(v, p, key string) {
	if strings.HasSuffix(key, "-data") {
		if d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v)); err == nil && bytes.Contains(d, []byte("PRIVATE KEY-----")) {
			v = string(d)
		}
	}
	if strings.Contains(v, "PRIVATE KEY-----") {
		if k, _, found, ok := nextKey([]byte(v)); found {
			if ok {
				r.add(k, p, key)
			} else {
				r.skipped++
			}
			return
		}
	}
	if publicClientSecrets[v] {
		return
	}
	r.add(v, p, key)
	// Docker's auth and npm's _auth are base64 of "user:password": the
	// password also travels alone (docker login, a registry's token API).
	if key == "auth" || key == "_auth" {
		if d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v)); err == nil {
			if _, pw, ok := strings.Cut(string(d), ":"); ok && utf8.ValidString(pw) {
				r.add(pw, p, key+" password")
			}
		}
	}
}

func (r *reader) urlPassword(s, p string) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		if strings.TrimSpace(s) != "" {
			r.skipped++
		}
		return
	}
	if u.User == nil {
		return
	}
	if pw, ok := u.User.Password(); ok {
		r.add(pw, p, "password")
	}
}
