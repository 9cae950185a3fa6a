package decoy

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// formats maps a mask of policy.Masks, as the table writes it, to the maker
// of its decoy. A maker returns the files (Rel "" for a file mask) and the
// canaries planted in them, with Where set to the Rel of their file.
var formats = map[string]func(g *gen, user string) ([]File, []Canary){
	"~/.aws":                               awsDir,
	"~/.config/gcloud":                     gcloudDir,
	"~/.kube":                              kubeDir,
	"~/.docker/config.json":                dockerConfig,
	"~/.config/doctl":                      doctlDir,
	"~/.terraform.d/credentials.tfrc.json": terraformCredentials,
	"~/.ssh":                               sshDir,
	"~/.netrc":                             netrc,
	"~/.git-credentials":                   gitCredentials,
	"~/.config/git/credentials":            gitCredentials,
	"~/.config/gh":                         ghDir,
	"~/.config/hub":                        hubConfig,
	"~/.npmrc":                             npmrc,
	"~/.yarnrc.yml":                        yarnrc,
	"~/.pypirc":                            pypirc,
	"~/.cargo/credentials.toml":            cargoCredentials,
	"~/.gem/credentials":                   gemCredentials,
	"~/.vault-token":                       vaultToken,
}

// Alphabets of the random parts. Each token below states its random bits:
// 16 characters of base32 are 80 bits, of alnum 95, of hex 64.
const (
	alnum    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b64      = alnum + "+/"
	b64URL   = alnum + "-_"
	base32   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	hex      = "0123456789abcdef"
	lowerNum = "abcdefghijklmnopqrstuvwxyz0123456789"
	digits   = "0123456789"
)

func file(content string, c ...Canary) ([]File, []Canary) {
	return []File{{Mode: 0o600, Content: []byte(content)}}, c
}

// githubToken is a classic-looking GitHub token: a prefix (ghp_ for a
// personal access token, gho_ for an OAuth one) and 36 alnum, 214 bits.
func githubToken(g *gen, prefix string) string {
	return prefix + g.chars(alnum, 36)
}

// npmToken is an npm access token: npm_ and 36 alnum, 214 bits.
func npmToken(g *gen) string {
	return "npm_" + g.chars(alnum, 36)
}

// privateIP is an address of 10.0.0.0/8 for hosts that do not exist.
func privateIP(g *gen) string {
	b := g.bytes(3)
	return fmt.Sprintf("10.%d.%d.%d", b[0], b[1], 2+int(b[2])%250)
}

func awsDir(g *gen, user string) ([]File, []Canary) {
	id := "AKIA" + g.chars(base32, 16) // 80 bits
	secret := g.chars(b64, 40)         // 240 bits
	return []File{
			{Rel: "credentials", Mode: 0o600, Content: fmt.Appendf(nil, "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", id, secret)},
			{Rel: "config", Mode: 0o600, Content: []byte("[default]\nregion = us-east-1\noutput = json\n")},
		}, []Canary{
			{Token: id, Kind: "aws-access-key-id", Where: "credentials"},
			{Token: secret, Kind: "aws-secret-access-key", Where: "credentials"},
		}
}

// gcloudDir holds the application default credentials that
// `gcloud auth application-default login` writes, keys sorted as gcloud does.
func gcloudDir(g *gen, user string) ([]File, []Canary) {
	secret := "GOCSPX-" + g.chars(b64URL, 28) // 168 bits
	refresh := "1//" + g.chars(b64URL, 60)    // 360 bits
	id := g.chars(digits, 12) + "-" + g.chars(lowerNum, 32) + ".apps.googleusercontent.com"
	b, _ := json.MarshalIndent(map[string]string{ // a map of strings always marshals
		"account":         "",
		"client_id":       id,
		"client_secret":   secret,
		"refresh_token":   refresh,
		"type":            "authorized_user",
		"universe_domain": "googleapis.com",
	}, "", "  ")
	const rel = "application_default_credentials.json"
	return []File{{Rel: rel, Mode: 0o600, Content: append(b, '\n')}}, []Canary{
		{Token: secret, Kind: "gcloud-client-secret", Where: rel},
		{Token: refresh, Kind: "gcloud-refresh-token", Where: rel},
	}
}

// kubeDir is a kubeconfig as kubectl writes it (keys sorted), for a cluster
// on a private address that does not exist. It skips TLS verification
// rather than carry a CA certificate that would have to be made up too.
func kubeDir(g *gen, user string) ([]File, []Canary) {
	token := kubeToken(g, user)
	config := fmt.Sprintf(`apiVersion: v1
clusters:
- cluster:
    insecure-skip-tls-verify: true
    server: https://%s:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: %s
  name: %s@kubernetes
current-context: %s@kubernetes
kind: Config
preferences: {}
users:
- name: %s
  user:
    token: %s
`, privateIP(g), user, user, user, user, token)
	return []File{{Rel: "config", Mode: 0o600, Content: []byte(config)}}, []Canary{
		// 40 characters of the random signature: a whole JWT would be
		// the longest pattern the scanner carries by far, for no gain.
		{Token: token[strings.LastIndexByte(token, '.')+1:][:40], Kind: "kube-token", Where: "config"},
	}
}

// kubeToken is a service account token of the legacy, secret-based kind:
// a JWT whose key id (256 bits), uid (122) and RS256 signature (2048) are
// random.
func kubeToken(g *gen, user string) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": enc.EncodeToString(g.bytes(32))})
	u := g.bytes(16)
	u[6] = u[6]&0x0f | 0x40 // a version 4 UUID
	u[8] = u[8]&0x3f | 0x80
	claims, _ := json.Marshal(map[string]string{
		"iss":                                    "kubernetes/serviceaccount",
		"kubernetes.io/serviceaccount/namespace": "default",
		// Kubernetes' own alphabet for generated name suffixes.
		"kubernetes.io/serviceaccount/secret.name":          user + "-token-" + g.chars("bcdfghjklmnpqrstvwxz2456789", 5),
		"kubernetes.io/serviceaccount/service-account.name": user,
		"kubernetes.io/serviceaccount/service-account.uid":  fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:]),
		"sub": "system:serviceaccount:default:" + user,
	})
	return enc.EncodeToString(header) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(g.bytes(256))
}

// dockerConfig is ~/.docker/config.json as `docker login` writes it with no
// credential helper: the token lives base64-encoded in "auth".
func dockerConfig(g *gen, user string) ([]File, []Canary) {
	token := "dckr_pat_" + g.chars(b64URL, 27) // 162 bits
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + token))
	b, _ := json.MarshalIndent(map[string]any{
		"auths": map[string]any{"https://index.docker.io/v1/": map[string]string{"auth": auth}},
	}, "", "\t")
	return file(string(b)+"\n", Canary{Token: token, Kind: "docker-token"})
}

func doctlDir(g *gen, user string) ([]File, []Canary) {
	token := "dop_v1_" + g.chars(hex, 64) // 256 bits
	return []File{{Rel: "config.yaml", Mode: 0o600, Content: []byte("access-token: " + token + "\ncontext: default\n")}}, []Canary{
		{Token: token, Kind: "digitalocean-token", Where: "config.yaml"},
	}
}

// terraformCredentials is what `terraform login` writes for HCP Terraform.
func terraformCredentials(g *gen, user string) ([]File, []Canary) {
	token := g.chars(alnum, 14) + ".atlasv1." + g.chars(alnum, 67) // 482 bits
	b, _ := json.MarshalIndent(map[string]any{
		"credentials": map[string]any{"app.terraform.io": map[string]string{"token": token}},
	}, "", "  ")
	return file(string(b)+"\n", Canary{Token: token, Kind: "terraform-token"})
}

// sshDir holds a real ed25519 key in OpenSSH's format, its public half, a
// config with one host and that host's key in known_hosts.
func sshDir(g *gen, user string) ([]File, []Canary) {
	key := ed25519.NewKeyFromSeed(g.bytes(ed25519.SeedSize))
	host := ed25519.NewKeyFromSeed(g.bytes(ed25519.SeedSize))
	ip := privateIP(g)
	block, err := ssh.MarshalPrivateKey(key, user+"@laptop")
	if err != nil {
		g.fail(fmt.Errorf("marshalling the ssh key: %w", err))
		return nil, nil
	}
	private := pem.EncodeToMemory(block)
	run, err := keyRun(private, block.Bytes, key)
	if err != nil {
		g.fail(err)
		return nil, nil
	}
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		g.fail(fmt.Errorf("marshalling the ssh public key: %w", err))
		return nil, nil
	}
	hostPub, err := ssh.NewPublicKey(host.Public())
	if err != nil {
		g.fail(fmt.Errorf("marshalling the ssh host key: %w", err))
		return nil, nil
	}
	authorized := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
	return []File{
			{Rel: "id_ed25519", Mode: 0o600, Content: private},
			{Rel: "id_ed25519.pub", Mode: 0o644, Content: []byte(authorized + " " + user + "@laptop\n")},
			{Rel: "known_hosts", Mode: 0o644, Content: []byte(ip + " " + string(ssh.MarshalAuthorizedKey(hostPub)))},
			{Rel: "config", Mode: 0o644, Content: fmt.Appendf(nil, "Host bastion\n    HostName %s\n    User %s\n    IdentityFile ~/.ssh/id_ed25519\n", ip, user)},
		}, []Canary{
			{Token: run, Kind: "ssh-private-key", Where: "id_ed25519"},
		}
}

// keyRun picks the canary of an OpenSSH private key: the longest run of
// its PEM body, within one line, that encodes nothing but the seed, the
// secret half of the key. The body starts with a header that every
// OpenSSH key shares, its check bytes come from the ssh package rather than
// from the run, and the public key is in id_ed25519.pub too.
func keyRun(private, body []byte, key ed25519.PrivateKey) (string, error) {
	seed := key.Seed()
	at := bytes.Index(body, seed)
	if at < 0 {
		return "", errors.New("the ssh key's seed is not in its OpenSSH encoding")
	}
	// Base64 character i encodes part of the 3 bytes from 3*(i/4): the
	// characters in [lo, hi) encode bytes of [at, at+len(seed)) only.
	lo, hi := (at+2)/3*4, (at+len(seed))/3*4
	best, off := "", 0
	for _, line := range strings.Split(string(private), "\n") {
		if line == "" || strings.HasPrefix(line, "-----") {
			continue
		}
		if a, b := max(lo, off), min(hi, off+len(line)); b-a > len(best) {
			best = line[a-off : b-off]
		}
		off += len(line)
	}
	if len(best) < 24 {
		return "", fmt.Errorf("the ssh key's longest run on one line is %d characters, want 24", len(best))
	}
	return best, nil
}

func netrc(g *gen, user string) ([]File, []Canary) {
	token := githubToken(g, "ghp_")
	return file("machine github.com login "+user+" password "+token+"\n", Canary{Token: token, Kind: "github-token"})
}

// gitCredentials is git's credential store, one URL a line.
func gitCredentials(g *gen, user string) ([]File, []Canary) {
	token := githubToken(g, "ghp_")
	return file("https://"+user+":"+token+"@github.com\n", Canary{Token: token, Kind: "github-token"})
}

func ghDir(g *gen, user string) ([]File, []Canary) {
	token := githubToken(g, "gho_")
	return []File{{Rel: "hosts.yml", Mode: 0o600, Content: fmt.Appendf(nil, "github.com:\n    user: %s\n    oauth_token: %s\n    git_protocol: https\n", user, token)}}, []Canary{
		{Token: token, Kind: "github-token", Where: "hosts.yml"},
	}
}

func hubConfig(g *gen, user string) ([]File, []Canary) {
	token := githubToken(g, "ghp_")
	return file("github.com:\n- user: "+user+"\n  oauth_token: "+token+"\n  protocol: https\n", Canary{Token: token, Kind: "github-token"})
}

// npmrc names yarn's registry, which serves npm's packages: the line is
// what `npm login --registry` writes for it.
func npmrc(g *gen, user string) ([]File, []Canary) {
	token := npmToken(g)
	return file("//registry.yarnpkg.com/:_authToken="+token+"\n", Canary{Token: token, Kind: "npm-token"})
}

func yarnrc(g *gen, user string) ([]File, []Canary) {
	token := npmToken(g)
	return file("npmRegistryServer: \"https://registry.yarnpkg.com\"\nnpmAuthToken: "+token+"\n", Canary{Token: token, Kind: "npm-token"})
}

// pypirc holds a PyPI API token: a macaroon whose first bytes, the same in
// every token, name pypi.org, then 150 base64url characters (900 bits).
func pypirc(g *gen, user string) ([]File, []Canary) {
	token := "pypi-AgEIcHlwaS5vcmc" + g.chars(b64URL, 150)
	return file("[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\npassword = "+token+"\n", Canary{Token: token, Kind: "pypi-token"})
}

func cargoCredentials(g *gen, user string) ([]File, []Canary) {
	token := "cio" + g.chars(alnum, 32) // 190 bits
	return file("[registry]\ntoken = \""+token+"\"\n", Canary{Token: token, Kind: "crates-token"})
}

// gemCredentials is RubyGems' YAML with a symbol key; gem refuses the file
// unless its mode is 0600.
func gemCredentials(g *gen, user string) ([]File, []Canary) {
	token := "rubygems_" + g.chars(hex, 48) // 192 bits
	return file("---\n:rubygems_api_key: "+token+"\n", Canary{Token: token, Kind: "rubygems-key"})
}

// vaultToken is a Vault service token, written without a newline as the
// vault CLI does.
func vaultToken(g *gen, user string) ([]File, []Canary) {
	token := "hvs.CAESI" + g.chars(b64URL, 86) // 516 bits
	return file(token, Canary{Token: token, Kind: "vault-token"})
}
