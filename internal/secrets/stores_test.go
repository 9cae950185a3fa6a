package secrets

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

// notRead are the masks of policy.Masks that Discover leaves alone, and
// why. A mask added to the table must be added to stores or here.
var notRead = map[string]string{
	"~/.gnupg":                "GnuPG's keys are binary and encrypted",
	"~/.password-store":       "pass's files are GnuPG-encrypted",
	"~/.local/share/keyrings": "the GNOME keyring is encrypted",
	"~/.local/share/kwalletd": "the KDE wallet is encrypted",
	"~/.local/state/cordon":   "audit logs and the trust store: no credentials",
	"~/.config/cordon":        "policy files name secrets, never hold their values",
	"~/.mozilla":              "browser profiles: SQLite and encrypted logins",
	"~/.config/google-chrome": "browser profiles: SQLite and encrypted logins",
	"~/.config/chromium":      "browser profiles: SQLite and encrypted logins",
	"~/.config/BraveSoftware": "browser profiles: SQLite and encrypted logins",
	"/etc/shadow":             "password hashes, not values that travel",
	"/etc/gshadow":            "password hashes, not values that travel",
	"~/.docker/run":           "a socket",
	"~/.docker/desktop":       "sockets and settings",
	"~/.colima":               "a socket",
	"~/.lima":                 "sockets",
	"~/.orbstack":             "a socket",
	"~/.rd":                   "a socket",
	"/run":                    "sockets",
	"/var/run":                "sockets",
}

func TestEveryMaskIsReadOrSaysWhyNot(t *testing.T) {
	inTable := map[string]bool{}
	for _, m := range policy.Masks {
		inTable[m.Path] = true
		_, read := stores[m.Path]
		_, why := notRead[m.Path]
		if read == why {
			t.Errorf("mask %s: in stores %v, in notRead %v; want exactly one", m.Path, read, why)
		}
	}
	for p := range stores {
		if !inTable[p] {
			t.Errorf("stores reads %s, which policy.Masks lacks", p)
		}
	}
}

// Tokens for the fixtures, made of pieces so that this file does not look
// like a leak to a secret scanner.
var (
	tokA = "tokA-" + strings.Repeat("0123456789", 3)
	tokB = "tokB-" + strings.Repeat("abcdefghij", 3)
	tokC = "tokC-" + strings.Repeat("KLMNOPQRST", 3)
	tokD = "tokD-" + strings.Repeat("uvwxyz0123", 3)
	tokE = "tokE-" + strings.Repeat("4567890abc", 3)
)

// TestStores reads each store in its real format, written by hand the way
// its tool writes it: the values come out, in order, and what is not a
// secret does not.
func TestStores(t *testing.T) {
	rk, err := rsaKey()
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}))
	rsaRun := keyRun(t, rsaPKCS1)
	der, err := x509.MarshalPKCS8PrivateKey(rk)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pkcs8Run := keyRun(t, rsaPKCS8)
	var ecPEM string
	for _, k := range testKeys(t) {
		if k.name == "sec1 ecdsa" {
			ecPEM = string(k.pem)
		}
	}
	ecRun := keyRun(t, ecPEM)
	edPEM := string(ed25519PEM(t, 9))
	edRun := keyRun(t, edPEM)
	jsonString := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}

	tests := []struct {
		name    string
		files   map[string]string
		want    []Value
		skipped int
	}{
		{
			name: "aws",
			files: map[string]string{
				"~/.aws/credentials": "[default]\naws_access_key_id = AKIA" + "IOSFODNN7EXAMPLE\naws_secret_access_key = " + tokA + "\n\n" +
					"# a comment = not a value\n[prod]\naws_access_key_id=" + "ASIA" + "IOSFODNN7EXAMPL2\naws_secret_access_key=" + tokB + "\naws_session_token = short\nregion = us-east-1\n",
				"~/.aws/config":                       "[profile ci]\nregion = eu-west-1\naws_session_token = " + tokC + "\nrole_arn = arn:aws:iam::123456789012:role/ci\n",
				"~/.aws/sso/cache/0123abcd.json":      `{"startUrl": "https://example.awsapps.com/start", "region": "us-east-1", "accessToken": "` + tokD + `", "expiresAt": "2030-01-01T00:00:00Z"}`,
				"~/.aws/cli/cache/role.json":          `{"Credentials": {"AccessKeyId": "ASIA` + `IOSFODNN7EXAMPL3", "SecretAccessKey": "` + tokE + `", "SessionToken": "` + tokE + `"}, "AssumedRoleUser": {"Arn": "arn:aws:sts::123456789012:assumed-role/x/y"}}`,
				"~/.aws/cli/cache/sub/not-read.json":  `{"SecretAccessKey": "` + tokA + `x"}`,
				"~/.aws/sso/cache/not-json-name.txt":  `{"accessToken": "` + tokA + `y"}`,
				"~/.aws/cli/cache/broken.json":        `{"SecretAccessKey": `,
				"~/.aws/amazonq/cache/somefile.json":  `{"accessToken": "` + tokA + `z"}`,
				"~/.aws/credentials.bak":              "aws_secret_access_key = " + tokA + "w\n",
				"~/.aws/sso/cache/kiro-auth-token.js": "x",
			},
			want: []Value{
				{"AKIA" + "IOSFODNN7EXAMPLE", "~/.aws/credentials", "aws_access_key_id"},
				{tokA, "~/.aws/credentials", "aws_secret_access_key"},
				{"ASIA" + "IOSFODNN7EXAMPL2", "~/.aws/credentials", "aws_access_key_id"},
				{tokB, "~/.aws/credentials", "aws_secret_access_key"},
				{tokC, "~/.aws/config", "aws_session_token"},
				{"ASIA" + "IOSFODNN7EXAMPL3", "~/.aws/cli/cache/role.json", "AccessKeyId"},
				{tokE, "~/.aws/cli/cache/role.json", "SecretAccessKey"},
				{tokD, "~/.aws/sso/cache/0123abcd.json", "accessToken"},
			},
			skipped: 2, // the short session token, the broken JSON
		},
		{
			name: "gcloud",
			files: map[string]string{
				"~/.config/gcloud/application_default_credentials.json": `{
  "account": "",
  "client_id": "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
  "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
  "refresh_token": "` + tokA + `",
  "type": "authorized_user",
  "universe_domain": "googleapis.com"
}`,
				"~/.config/gcloud/legacy_credentials/ci@project.iam.gserviceaccount.com/adc.json": `{
  "client_email": "ci@project.iam.gserviceaccount.com",
  "client_id": "123456789012345678901",
  "private_key": ` + jsonString(rsaPKCS8) + `,
  "private_key_id": "0123456789abcdef0123456789abcdef01234567",
  "type": "service_account"
}`,
				"~/.config/gcloud/legacy_credentials/alice@example.com/adc.json": `{"client_id": "32555940559.apps.googleusercontent.com", "client_secret": "ZmssLNjJy2998hD4CTg2ejr2", "refresh_token": "` + tokB + `", "type": "authorized_user"}`,
				"~/.config/gcloud/credentials.db":                                "SQLite format 3\x00" + tokC,
				"~/.config/gcloud/logs/2025.01.01/00.00.00.000000.log":           "refresh_token: " + tokD,
				"~/.config/gcloud/configurations/config_default":                 "[core]\naccount = alice@example.com\n",
			},
			want: []Value{
				{tokA, "~/.config/gcloud/application_default_credentials.json", "refresh_token"},
				{tokB, "~/.config/gcloud/legacy_credentials/alice@example.com/adc.json", "refresh_token"},
				{pkcs8Run, "~/.config/gcloud/legacy_credentials/ci@project.iam.gserviceaccount.com/adc.json", "private_key"},
			},
		},
		{
			name: "azure",
			files: map[string]string{
				"~/.azure/msal_token_cache.json": `{
  "AccessToken": {"uid.utid-login.microsoftonline.com-accesstoken-04b07795-tenant-scope": {"credential_type": "AccessToken", "secret": "` + tokA + `", "home_account_id": "uid.utid"}},
  "RefreshToken": {"uid.utid-login.microsoftonline.com-refreshtoken-04b07795--": {"credential_type": "RefreshToken", "secret": "` + tokB + `"}},
  "Account": {"uid.utid-login.microsoftonline.com-tenant": {"username": "alice@example.com", "local_account_id": "00000000-0000-0000-0000-000000000000"}}
}`,
				"~/.azure/accessTokens.json":              `[{"tokenType": "Bearer", "accessToken": "` + tokC + `", "refreshToken": "` + tokD + `", "userId": "alice@example.com", "_clientId": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"}]`,
				"~/.azure/service_principal_entries.json": `[{"client_id": "00000000-0000-0000-0000-000000000001", "tenant": "t", "client_secret": "` + tokE + `"}]`,
				"~/.azure/azureProfile.json":              `{"subscriptions": [{"id": "00000000-0000-0000-0000-000000000002", "user": {"name": "alice@example.com"}}]}`,
			},
			want: []Value{
				{tokC, "~/.azure/accessTokens.json", "accessToken"},
				{tokD, "~/.azure/accessTokens.json", "refreshToken"},
				{tokA, "~/.azure/msal_token_cache.json", "secret"},
				{tokB, "~/.azure/msal_token_cache.json", "secret"},
				{tokE, "~/.azure/service_principal_entries.json", "client_secret"},
			},
		},
		{
			name: "kube",
			files: map[string]string{
				"~/.kube/config": `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ` + base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")) + `
    server: https://10.0.0.1:6443
  name: prod
users:
- name: admin
  user:
    client-certificate-data: ` + base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n")) + `
    client-key-data: ` + base64.StdEncoding.EncodeToString([]byte(ecPEM)) + `
- name: bot
  user:
    token: ` + tokA + `
- name: basic
  user:
    username: admin
    password: short
- name: oidc
  user:
    auth-provider:
      name: oidc
      config:
        client-id: kubernetes
        client-secret: "` + tokB + `"
        id-token: ` + tokC + `
        refresh-token: ` + tokD + `
`,
				"~/.kube/staging.yaml":                           "users:\n- name: x\n  user:\n    token: " + tokE + "\n",
				"~/.kube/cache/discovery/x/serverresources.json": "token: " + tokA + "q\n",
				"~/.kube/broken":                                 "users: [\n",
			},
			want: []Value{
				{ecRun, "~/.kube/config", "client-key-data"},
				{tokA, "~/.kube/config", "token"},
				{tokB, "~/.kube/config", "client-secret"},
				{tokC, "~/.kube/config", "id-token"},
				{tokD, "~/.kube/config", "refresh-token"},
				{tokE, "~/.kube/staging.yaml", "token"},
			},
			skipped: 2, // the short password, the broken YAML
		},
		{
			name: "docker",
			files: map[string]string{
				"~/.docker/config.json": `{
	"auths": {
		"https://index.docker.io/v1/": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("alice:"+tokA)) + `"},
		"ghcr.io": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("alice:"+tokB)) + `"},
		"myregistry.azurecr.io": {"auth": "MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==", "identitytoken": "` + tokC + `"},
		"other.example.com": {"registrytoken": "` + tokD + `"}
	},
	"credsStore": "desktop",
	"currentContext": "default-context-with-a-long-name"
}`,
			},
			want: []Value{
				{base64.StdEncoding.EncodeToString([]byte("alice:" + tokB)), "~/.docker/config.json", "auth"}, // ghcr.io sorts first
				{tokB, "~/.docker/config.json", "auth password"},
				{base64.StdEncoding.EncodeToString([]byte("alice:" + tokA)), "~/.docker/config.json", "auth"},
				{tokA, "~/.docker/config.json", "auth password"},
				{"MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==", "~/.docker/config.json", "auth"}, // an identity token's user and no password
				{tokC, "~/.docker/config.json", "identitytoken"},
				{tokD, "~/.docker/config.json", "registrytoken"},
			},
		},
		{
			name: "oci",
			files: map[string]string{
				"~/.oci/config": "[DEFAULT]\nuser=ocid1.user.oc1..aaaa\nfingerprint=20:3b:97:13:55:1c\nkey_file=~/.oci/oci_api_key.pem\npass_phrase=" + tokA + "\ntenancy=ocid1.tenancy.oc1..aaaa\nregion=us-ashburn-1\n\n" +
					"[OTHER]\nkey_file=/etc/elsewhere.pem\n\n[ESCAPE]\nkey_file=~/.oci/../.ssh/id_ed25519\n\n[SESSION]\nkey_file=~/.oci/sessions/SESSION/oci_api_key.pem\nsecurity_token_file=~/.oci/sessions/SESSION/token\n",
				"~/.oci/oci_api_key.pem":                  rsaPKCS1,
				"~/.oci/oci_api_key_public.pem":           "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n",
				"~/.oci/sessions/SESSION/oci_api_key.pem": edPEM,
				"~/.oci/sessions/SESSION/token":           tokB + "\n",
			},
			want: []Value{
				{rsaRun, "~/.oci/oci_api_key.pem", "private key"},
				{tokA, "~/.oci/config", "pass_phrase"},
				{edRun, "~/.oci/sessions/SESSION/oci_api_key.pem", "private key"},
				{tokB, "~/.oci/sessions/SESSION/token", "security token"},
			},
		},
		{
			name: "doctl",
			files: map[string]string{
				"~/.config/doctl/config.yaml": "access-token: " + tokA + "\nauth-contexts:\n  work: " + tokB + "\n  home: " + tokC + "\ncontext: work\noutput: text-and-more-things\n",
			},
			want: []Value{
				{tokA, "~/.config/doctl/config.yaml", "access-token"},
				{tokB, "~/.config/doctl/config.yaml", "work"},
				{tokC, "~/.config/doctl/config.yaml", "home"},
			},
		},
		{
			name: "terraform",
			files: map[string]string{
				"~/.terraform.d/credentials.tfrc.json": `{"credentials": {"app.terraform.io": {"token": "` + tokA + `"}, "tfe.example.com": {"token": "` + tokB + `"}}}`,
			},
			want: []Value{
				{tokA, "~/.terraform.d/credentials.tfrc.json", "token"},
				{tokB, "~/.terraform.d/credentials.tfrc.json", "token"},
			},
		},
		{
			name: "ssh",
			files: map[string]string{
				"~/.ssh/id_ed25519":      edPEM,
				"~/.ssh/id_ed25519.pub":  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE alice@laptop\n",
				"~/.ssh/config":          "Host *\n  IdentityFile ~/.ssh/id_ed25519\n",
				"~/.ssh/known_hosts":     "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
				"~/.ssh/keys/deploy.pem": rsaPKCS1,
				"~/.ssh/keys/broken":     "-----BEGIN OPENSSH PRIVATE KEY-----\nnot base64!\n-----END OPENSSH PRIVATE KEY-----\n",
			},
			want: []Value{
				{edRun, "~/.ssh/id_ed25519", "private key"},
				{rsaRun, "~/.ssh/keys/deploy.pem", "private key"},
			},
			skipped: 1, // the broken key
		},
		{
			name: "netrc",
			files: map[string]string{
				"~/.netrc": "machine github.com\n  login alice\n  password " + tokA + "\n" +
					"machine api.heroku.com login alice@example.com password \"" + strings.Replace(tokB, "-", `\"`, 1) + "\" account " + tokC + "\n" +
					"macdef init\npassword " + tokD + "\ncd /pub\n\n" +
					"default login anonymous password short\n",
			},
			want: []Value{
				{tokA, "~/.netrc", "password"},
				{strings.Replace(tokB, "-", `"`, 1), "~/.netrc", "password"},
				{tokC, "~/.netrc", "account"},
			},
			skipped: 1, // short
		},
		{
			name: "git credentials",
			files: map[string]string{
				"~/.git-credentials":        "https://alice:" + strings.Replace(tokA, "-", "%2F", 1) + "@github.com\n\nhttps://bob@gitlab.com\nhttps://carol:" + tokB + "@example.com:8443/path\n",
				"~/.config/git/credentials": "https://x-access-token:" + tokC + "@github.com\n",
			},
			want: []Value{
				{strings.Replace(tokA, "-", "/", 1), "~/.git-credentials", "password"},
				{tokB, "~/.git-credentials", "password"},
				{tokC, "~/.config/git/credentials", "password"},
			},
		},
		{
			name: "gh and hub",
			files: map[string]string{
				"~/.config/gh/hosts.yml":  "github.com:\n    users:\n        alice:\n            oauth_token: " + tokA + "\n        bob:\n            oauth_token: " + tokB + "\n    git_protocol: https\n    user: alice\n    oauth_token: " + tokA + "\n",
				"~/.config/gh/config.yml": "git_protocol: https\neditor: oauth_token-like-but-not\n",
				"~/.config/hub":           "github.com:\n- user: alice\n  oauth_token: " + tokC + "\n  protocol: https\n",
			},
			want: []Value{
				{tokA, "~/.config/gh/hosts.yml", "oauth_token"},
				{tokB, "~/.config/gh/hosts.yml", "oauth_token"},
				{tokC, "~/.config/hub", "oauth_token"},
			},
		},
		{
			name: "npm and yarn",
			files: map[string]string{
				"~/.npmrc": "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=" + tokA + "\n" +
					"@acme:registry=https://npm.acme.example/\n//npm.acme.example/:_authToken=\"" + tokB + "\"\n" +
					"//ci.example/:_authToken=${NPM_TOKEN}\n_auth=" + base64.StdEncoding.EncodeToString([]byte("alice:"+tokC)) + "\n" +
					"  //legacy.example/:_password=" + base64.StdEncoding.EncodeToString([]byte(tokD)) + "\nalways-auth=true\nemail=alice@example.com\n",
				"~/.yarnrc.yml": "npmRegistryServer: \"https://registry.yarnpkg.com\"\nnpmAuthToken: " + tokE + "\nnpmScopes:\n  acme:\n    npmAuthIdent: \"alice:" + tokA + "x\"\n",
			},
			want: []Value{
				{tokA, "~/.npmrc", "_authtoken"},
				{tokB, "~/.npmrc", "_authtoken"},
				{base64.StdEncoding.EncodeToString([]byte("alice:" + tokC)), "~/.npmrc", "_auth"},
				{tokC, "~/.npmrc", "_auth password"},
				{base64.StdEncoding.EncodeToString([]byte(tokD)), "~/.npmrc", "_password"},
				{tokE, "~/.yarnrc.yml", "npmAuthToken"},
				{"alice:" + tokA + "x", "~/.yarnrc.yml", "npmAuthIdent"},
			},
		},
		{
			name: "pypi and pip",
			files: map[string]string{
				"~/.pypirc":              "[distutils]\nindex-servers =\n    pypi\n    testpypi\n\n[pypi]\nusername = __token__\npassword = " + tokA + "\n\n[testpypi]\nrepository: https://test.pypi.org/legacy/\nusername: __token__\npassword: " + tokB + "\n",
				"~/.config/pip/pip.conf": "[global]\nindex-url = https://alice:" + tokC + "@pypi.example.com/simple\nextra-index-url =\n    https://pypi.org/simple\n    https://bob:" + strings.Replace(tokD, "-", "%40", 1) + "@other.example.com/simple\ntimeout = 60\n",
			},
			want: []Value{
				{tokA, "~/.pypirc", "password"},
				{tokB, "~/.pypirc", "password"},
				{tokC, "~/.config/pip/pip.conf", "password"},
				{strings.Replace(tokD, "-", "@", 1), "~/.config/pip/pip.conf", "password"},
			},
		},
		{
			name: "cargo and gem",
			files: map[string]string{
				"~/.cargo/credentials":      "[registry]\ntoken = '" + tokA + "'\n",
				"~/.cargo/credentials.toml": "[registry]\ntoken = \"" + tokB + "\" # crates.io\n\n[registries.acme]\ntoken = \"Bearer " + tokC + "\"\nsecret-key = \"k3.secret." + tokD + "\"\nindex = \"sparse+https://acme.example/index/\"\n",
				"~/.gem/credentials":        "---\n:rubygems_api_key: " + tokE + "\nhttps://gems.acme.example: " + tokA + "z\n",
			},
			want: []Value{
				{tokA, "~/.cargo/credentials", "token"},
				{tokB, "~/.cargo/credentials.toml", "token"},
				{"Bearer " + tokC, "~/.cargo/credentials.toml", "token"},
				{"k3.secret." + tokD, "~/.cargo/credentials.toml", "secret-key"},
				{tokE, "~/.gem/credentials", ":rubygems_api_key"},
				{tokA + "z", "~/.gem/credentials", "https://gems.acme.example"},
			},
		},
		{
			name: "maven and gradle",
			files: map[string]string{
				"~/.m2/settings.xml": `<?xml version="1.0" encoding="UTF-8"?>
<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <servers>
    <server><id>central</id><username>alice</username><password>` + tokA + `</password></server>
    <server><id>ssh</id><privateKey>${user.home}/.ssh/id_rsa</privateKey><passphrase>` + tokB + `</passphrase></server>
    <server><id>ci</id><username>ci</username><password>${env.CI_PASSWORD_FROM_ENV}</password></server>
    <server><id>enc</id><password>{` + tokC + `}</password></server>
  </servers>
</settings>
`,
				"~/.gradle/gradle.properties": "org.gradle.jvmargs=-Xmx2g -Dfile.encoding=UTF-8\n# mavenPassword=commented-out-value\nmavenUser=alice-the-maven-user\nmavenPassword=" + tokD + "\n" +
					"signing.keyId=24875D73\nsigning.password : " + strings.Replace(tokE, "-", `\=`, 1) + "\nsigning.secretKeyRingFile=/home/alice/.gnupg/secring.gpg\n" +
					"githubToken " + tokA + "q\\\n    continued\nsystemProp.https.proxyPassword=short\n",
			},
			want: []Value{
				{tokA, "~/.m2/settings.xml", "password"},
				{tokB, "~/.m2/settings.xml", "passphrase"},
				{"{" + tokC + "}", "~/.m2/settings.xml", "password"},
				{tokD, "~/.gradle/gradle.properties", "mavenPassword"},
				{strings.Replace(tokE, "-", "=", 1), "~/.gradle/gradle.properties", "signing.password"},
				{tokA + "qcontinued", "~/.gradle/gradle.properties", "githubToken"},
			},
			skipped: 1, // the short proxy password
		},
		{
			name: "anthropic and vault",
			files: map[string]string{
				"~/.config/anthropic/config.json":      `{"api_key": "` + tokA + `", "base_url": "https://api.anthropic.com/with/a/long/path", "profiles": {"work": {"apiKey": "` + tokB + `", "model": "claude-something-long"}}}`,
				"~/.config/anthropic/credentials.json": `[{"accessToken": "` + tokC + `", "refresh-token": "` + tokD + `", "expiresAt": 1234567890123}]`,
				"~/.config/anthropic/api_key":          tokE + "\n",
				"~/.config/anthropic/notes.txt":        "several words that are not a key at all\n",
				"~/.vault-token":                       "hvs.CAESI" + tokA,
			},
			want: []Value{
				{tokE, "~/.config/anthropic/api_key", "key"},
				{tokA, "~/.config/anthropic/config.json", "api_key"},
				{tokB, "~/.config/anthropic/config.json", "apiKey"},
				{tokC, "~/.config/anthropic/credentials.json", "accessToken"},
				{tokD, "~/.config/anthropic/credentials.json", "refresh-token"},
				{"hvs.CAESI" + tokA, "~/.vault-token", "token"},
			},
		},
		{
			name: "malformed",
			files: map[string]string{
				"~/.docker/config.json":                "{\"auths\": {",
				"~/.terraform.d/credentials.tfrc.json": "\x00\x01\x02",
				"~/.config/gh/hosts.yml":               "github.com: [unclosed\n",
				"~/.m2/settings.xml":                   "<settings><servers><password>" + tokA + "</password><x></settings>",
				"~/.config/git/credentials":            "https://alice:%zz@github.com\n",
				"~/.netrc":                             "machine \"unterminated",
				"~/.npmrc":                             "=\n==\n//x/:_authToken",
				"~/.cargo/credentials.toml":            "token = \"unterminated\ntoken = '\n[registry\n",
				"~/.gradle/gradle.properties":          "\\\n\\u12\npassword\\",
			},
			want: []Value{
				{tokA, "~/.m2/settings.xml", "password"}, // found before the XML breaks
			},
			skipped: 5, // docker, terraform, gh, settings.xml, the bad escape of the git URL
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := writeHome(t, tt.files)
			vals, skipped := discover(home, nil)
			if !slices.Equal(vals, tt.want) {
				var got, want []string
				for _, v := range vals {
					got = append(got, v.Where+" "+v.What+" "+redact(v.Value))
				}
				for _, v := range tt.want {
					want = append(want, v.Where+" "+v.What+" "+redact(v.Value))
				}
				t.Errorf("Discover found\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
			}
			if skipped != tt.skipped {
				t.Errorf("skipped = %d, want %d", skipped, tt.skipped)
			}
		})
	}
}

// keyRun is the value of the one key in a PEM text, computed afresh.
func keyRun(t *testing.T, pemText string) string {
	t.Helper()
	v, _, found, ok := nextKey([]byte(pemText))
	if !found || !ok {
		t.Fatalf("no key in the PEM text")
	}
	return v
}

// TestHostKeys reads a host key as the /etc/ssh stores are read, from a
// path that is not in the home directory.
func TestHostKeys(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ssh_host_ed25519_key")
	if err := os.WriteFile(p, ed25519PEM(t, 3), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &reader{seen: map[string]bool{}}
	keyFile(r, p)
	want := []Value{{keyRun(t, string(ed25519PEM(t, 3))), p, "private key"}}
	if !slices.Equal(r.vals, want) || r.skipped != 0 {
		t.Errorf("keyFile(%s) = %v, %d skipped; want %v", p, r.vals, r.skipped, want)
	}
}
