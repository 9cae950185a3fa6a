package decoy

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

// formatTests parse each decoy file as its tool would and check that the
// values the tool would use are the run's canaries. tokens holds the
// canaries of the file by kind.
var formatTests = []struct {
	where string
	mode  uint32
	check func(t *testing.T, content []byte, tokens map[string]string, fs map[string]File)
}{
	{"~/.aws/credentials", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		s := ini(t, content)["default"]
		match(t, "aws_access_key_id", s["aws_access_key_id"], `^AKIA[A-Z2-7]{16}$`, tokens, "aws-access-key-id")
		match(t, "aws_secret_access_key", s["aws_secret_access_key"], `^[A-Za-z0-9/+]{40}$`, tokens, "aws-secret-access-key")
	}},
	{"~/.aws/config", 0o600, func(t *testing.T, content []byte, _ map[string]string, _ map[string]File) {
		s := ini(t, content)["default"]
		if s["region"] != "us-east-1" || s["output"] != "json" {
			t.Errorf("[default] = %v, want region us-east-1 and output json", s)
		}
	}},
	{"~/.config/gcloud/application_default_credentials.json", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		var c struct {
			Type         string `json:"type"`
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
			RefreshToken string `json:"refresh_token"`
		}
		mustJSON(t, content, &c)
		if c.Type != "authorized_user" {
			t.Errorf("type = %q, want authorized_user", c.Type)
		}
		match(t, "client_id", c.ClientID, `^[0-9]{12}-[a-z0-9]{32}\.apps\.googleusercontent\.com$`, nil, "")
		match(t, "client_secret", c.ClientSecret, `^GOCSPX-[A-Za-z0-9_-]{28}$`, tokens, "gcloud-client-secret")
		match(t, "refresh_token", c.RefreshToken, `^1//[A-Za-z0-9_-]{60}$`, tokens, "gcloud-refresh-token")
	}},
	{"~/.kube/config", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		var c struct {
			APIVersion     string `yaml:"apiVersion"`
			Kind           string
			CurrentContext string `yaml:"current-context"`
			Clusters       []struct {
				Name    string
				Cluster struct{ Server string }
			}
			Contexts []struct {
				Name    string
				Context struct{ Cluster, User string }
			}
			Users []struct {
				Name string
				User struct{ Token string }
			}
		}
		mustYAML(t, content, &c)
		if c.APIVersion != "v1" || c.Kind != "Config" || len(c.Clusters) != 1 || len(c.Contexts) != 1 || len(c.Users) != 1 {
			t.Fatalf("kubeconfig = %+v, want one cluster, context and user", c)
		}
		ctx := c.Contexts[0]
		if ctx.Name != c.CurrentContext || ctx.Context.Cluster != c.Clusters[0].Name || ctx.Context.User != c.Users[0].Name {
			t.Errorf("current context %q = %+v, does not join cluster %q and user %q", c.CurrentContext, ctx, c.Clusters[0].Name, c.Users[0].Name)
		}
		u, err := url.Parse(c.Clusters[0].Cluster.Server)
		if err != nil {
			t.Fatal(err)
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err != nil || !netip.MustParsePrefix("10.0.0.0/8").Contains(ip) || u.Scheme != "https" || u.Port() != "6443" {
			t.Errorf("server = %q, want https://10.x.x.x:6443", c.Clusters[0].Cluster.Server)
		}
		token := c.Users[0].User.Token
		match(t, "token", token, `^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`, nil, "")
		parts := strings.Split(token, ".")
		// The canary is the start of the random signature.
		match(t, "signature start", parts[2][:40], `^[A-Za-z0-9_-]{40}$`, tokens, "kube-token")
		var header, claims map[string]string
		mustJSON(t, decodeJWT(t, parts[0]), &header)
		mustJSON(t, decodeJWT(t, parts[1]), &claims)
		if header["alg"] != "RS256" || len(header["kid"]) != 43 {
			t.Errorf("token header = %v, want RS256 and a key id", header)
		}
		if claims["sub"] != "system:serviceaccount:default:alice" || claims["iss"] != "kubernetes/serviceaccount" {
			t.Errorf("token claims = %v, want alice's service account", claims)
		}
		if sig := decodeJWT(t, parts[2]); len(sig) != 256 {
			t.Errorf("token signature has %d bytes, want 256", len(sig))
		}
	}},
	{"~/.docker/config.json", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		user, token, _ := strings.Cut(string(dockerAuth(t, content)), ":")
		if user != "alice" {
			t.Errorf("docker auth user = %q, want alice", user)
		}
		match(t, "docker auth password", token, `^dckr_pat_[A-Za-z0-9_-]{27}$`, tokens, "docker-token")
	}},
	{"~/.config/doctl/config.yaml", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		var c map[string]string
		mustYAML(t, content, &c)
		match(t, "access-token", c["access-token"], `^dop_v1_[0-9a-f]{64}$`, tokens, "digitalocean-token")
	}},
	{"~/.terraform.d/credentials.tfrc.json", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		var c struct {
			Credentials map[string]struct{ Token string }
		}
		mustJSON(t, content, &c)
		match(t, "token", c.Credentials["app.terraform.io"].Token, `^[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9]{67}$`, tokens, "terraform-token")
	}},
	{"~/.ssh/id_ed25519", 0o600, func(t *testing.T, content []byte, tokens map[string]string, fs map[string]File) {
		signer, err := ssh.ParsePrivateKey(content)
		if err != nil {
			t.Fatalf("ssh.ParsePrivateKey: %v", err)
		}
		pub, comment, _, _, err := ssh.ParseAuthorizedKey(fs["~/.ssh/id_ed25519.pub"].Content)
		if err != nil {
			t.Fatalf("ssh.ParseAuthorizedKey(id_ed25519.pub): %v", err)
		}
		if pub.Type() != ssh.KeyAlgoED25519 || !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
			t.Errorf("id_ed25519.pub holds %s, not the public half of id_ed25519", ssh.FingerprintSHA256(pub))
		}
		if comment != "alice@laptop" {
			t.Errorf("id_ed25519.pub comment = %q, want alice@laptop", comment)
		}
		run := tokens["ssh-private-key"]
		if len(run) < 24 {
			t.Errorf("ssh canary %q is shorter than 24", run)
		}
		raw, err := ssh.ParseRawPrivateKey(content)
		if err != nil {
			t.Fatalf("ssh.ParseRawPrivateKey: %v", err)
		}
		key, ok := raw.(*ed25519.PrivateKey)
		if !ok {
			t.Fatalf("id_ed25519 holds a %T, want an ed25519 key", raw)
		}
		if b, err := base64.StdEncoding.DecodeString(run); err != nil || !bytes.Contains(key.Seed(), b) {
			t.Errorf("ssh canary %q does not encode bytes of the key's seed %x only (%v)", run, key.Seed(), err)
		}
		lines := strings.Split(string(content), "\n")
		if !strings.HasPrefix(lines[0], "-----BEGIN OPENSSH PRIVATE KEY-----") || strings.Contains(lines[0], run) || !strings.Contains(strings.Join(lines[1:], "\n"), run) {
			t.Errorf("ssh canary %q is not on a body line of\n%s", run, content)
		}
	}},
	{"~/.ssh/id_ed25519.pub", 0o644, nil}, // checked with id_ed25519
	{"~/.ssh/known_hosts", 0o644, func(t *testing.T, content []byte, _ map[string]string, fs map[string]File) {
		_, hosts, key, _, rest, err := ssh.ParseKnownHosts(content)
		if err != nil || len(bytes.TrimSpace(rest)) != 0 {
			t.Fatalf("ssh.ParseKnownHosts = %v, rest %q", err, rest)
		}
		if key.Type() != ssh.KeyAlgoED25519 || len(hosts) != 1 {
			t.Errorf("known_hosts has %s key for %v, want one ed25519 host", key.Type(), hosts)
		}
		if !strings.Contains(string(fs["~/.ssh/config"].Content), "HostName "+hosts[0]+"\n") {
			t.Errorf("ssh config does not name the known host %s", hosts[0])
		}
	}},
	{"~/.ssh/config", 0o644, func(t *testing.T, content []byte, _ map[string]string, _ map[string]File) {
		keys := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(content)), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
			if !ok {
				t.Errorf("ssh config line %q is not keyword and value", line)
			}
			keys[k] = v
		}
		if keys["Host"] == "" || keys["User"] != "alice" || keys["IdentityFile"] != "~/.ssh/id_ed25519" {
			t.Errorf("ssh config = %v, want a Host for alice with id_ed25519", keys)
		}
	}},
	{"~/.netrc", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		f := strings.Fields(string(content))
		if len(f) != 6 || f[0] != "machine" || f[1] != "github.com" || f[2] != "login" || f[3] != "alice" || f[4] != "password" {
			t.Fatalf(".netrc = %q, want machine github.com login alice password <token>", content)
		}
		match(t, "password", f[5], `^ghp_[A-Za-z0-9]{36}$`, tokens, "github-token")
	}},
	{"~/.git-credentials", 0o600, checkGitCredentials},
	{"~/.config/git/credentials", 0o600, checkGitCredentials},
	{"~/.config/gh/hosts.yml", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		var c map[string]struct {
			User        string
			OAuthToken  string `yaml:"oauth_token"`
			GitProtocol string `yaml:"git_protocol"`
		}
		mustYAML(t, content, &c)
		h := c["github.com"]
		if h.User != "alice" || h.GitProtocol != "https" {
			t.Errorf("github.com = %+v, want user alice over https", h)
		}
		match(t, "oauth_token", h.OAuthToken, `^gho_[A-Za-z0-9]{36}$`, tokens, "github-token")
	}},
	{"~/.config/hub", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		var c map[string][]struct {
			User       string
			OAuthToken string `yaml:"oauth_token"`
			Protocol   string
		}
		mustYAML(t, content, &c)
		if len(c["github.com"]) != 1 || c["github.com"][0].User != "alice" {
			t.Fatalf("hub config = %+v, want one entry for alice", c)
		}
		match(t, "oauth_token", c["github.com"][0].OAuthToken, `^ghp_[A-Za-z0-9]{36}$`, tokens, "github-token")
	}},
	{"~/.npmrc", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		k, v, _ := strings.Cut(strings.TrimSpace(string(content)), "=")
		if !strings.HasPrefix(k, "//") || !strings.HasSuffix(k, "/:_authToken") {
			t.Errorf(".npmrc key = %q, want //<registry>/:_authToken", k)
		}
		match(t, "_authToken", v, `^npm_[A-Za-z0-9]{36}$`, tokens, "npm-token")
	}},
	{"~/.yarnrc.yml", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		var c map[string]string
		mustYAML(t, content, &c)
		if _, err := url.Parse(c["npmRegistryServer"]); err != nil || !strings.HasPrefix(c["npmRegistryServer"], "https://") {
			t.Errorf("npmRegistryServer = %q, want an https URL", c["npmRegistryServer"])
		}
		match(t, "npmAuthToken", c["npmAuthToken"], `^npm_[A-Za-z0-9]{36}$`, tokens, "npm-token")
	}},
	{"~/.pypirc", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		c := ini(t, content)
		if strings.TrimSpace(c["distutils"]["index-servers"]) != "pypi" || c["pypi"]["username"] != "__token__" {
			t.Errorf(".pypirc = %v, want index-servers pypi and username __token__", c)
		}
		match(t, "password", c["pypi"]["password"], `^pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{40,}$`, tokens, "pypi-token")
	}},
	{"~/.cargo/credentials.toml", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		token, err := strconv.Unquote(ini(t, content)["registry"]["token"]) // a TOML basic string
		if err != nil {
			t.Errorf("[registry] token is not a quoted string: %v", err)
		}
		match(t, "token", token, `^cio[A-Za-z0-9]{32}$`, tokens, "crates-token")
	}},
	{"~/.gem/credentials", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		var c map[string]string
		mustYAML(t, content, &c)
		match(t, ":rubygems_api_key", c[":rubygems_api_key"], `^rubygems_[0-9a-f]{48}$`, tokens, "rubygems-key")
	}},
	{"~/.vault-token", 0o600, func(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
		match(t, "token", string(content), `^hvs\.[A-Za-z0-9_-]{90,}$`, tokens, "vault-token")
	}},
}

func TestFormats(t *testing.T) {
	decoys, canaries := generate(t, 1)
	fs := files(t, decoys)
	tested := map[string]bool{}
	for _, tt := range formatTests {
		tested[tt.where] = true
		t.Run(tt.where, func(t *testing.T) {
			f, ok := fs[tt.where]
			if !ok {
				t.Fatalf("no decoy file %s", tt.where)
			}
			if f.Mode != tt.mode {
				t.Errorf("mode = %#o, want %#o", f.Mode, tt.mode)
			}
			tokens := map[string]string{}
			for _, c := range canaries {
				if c.Where == tt.where {
					tokens[c.Kind] = c.Token
				}
			}
			if tt.check != nil {
				tt.check(t, f.Content, tokens, fs)
			}
		})
	}
	for where := range fs {
		if !tested[where] {
			t.Errorf("decoy file %s has no format test", where)
		}
	}
}

func checkGitCredentials(t *testing.T, content []byte, tokens map[string]string, _ map[string]File) {
	u, err := url.Parse(strings.TrimSuffix(string(content), "\n"))
	if err != nil {
		t.Fatalf("git credentials line: %v", err)
	}
	password, _ := u.User.Password()
	if u.Scheme != "https" || u.Host != "github.com" || u.User.Username() != "alice" {
		t.Errorf("git credentials = %q, want https://alice:<token>@github.com", content)
	}
	match(t, "password", password, `^ghp_[A-Za-z0-9]{36}$`, tokens, "github-token")
}

// match checks that a parsed value has its format and, unless kind is "",
// that it is the file's canary of that kind.
func match(t *testing.T, name, got, pattern string, tokens map[string]string, kind string) {
	t.Helper()
	if !regexp.MustCompile(pattern).MatchString(got) {
		t.Errorf("%s = %q, want it to match %s", name, got, pattern)
	}
	if kind == "" {
		return
	}
	if want, ok := tokens[kind]; !ok {
		t.Errorf("%s: the file has no canary of kind %s", name, kind)
	} else if got != want {
		t.Errorf("%s = %q, want the canary %q", name, got, want)
	}
}

// ini parses the INI that AWS, PyPI and (for one table of plain keys)
// TOML share: [section] headers, key = value, indented continuation lines.
func ini(t *testing.T, content []byte) map[string]map[string]string {
	t.Helper()
	sections := map[string]map[string]string{}
	var section, key string
	sc := bufio.NewScanner(bytes.NewReader(content))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section, key = line[1:len(line)-1], ""
			sections[section] = map[string]string{}
		case section != "" && key != "" && (line[0] == ' ' || line[0] == '\t'):
			sections[section][key] += strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("line %d: %q is not key = value in a section", n, line)
			}
			key = strings.TrimSpace(k)
			sections[section][key] = strings.TrimSpace(v)
		}
	}
	return sections
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("json.Unmarshal(%q): %v", b, err)
	}
}

func mustYAML(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("yaml.Unmarshal(%q): %v", b, err)
	}
}

func decodeJWT(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("decoding JWT part %q: %v", s, err)
	}
	return b
}
