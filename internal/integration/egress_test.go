package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/audit"
	"github.com/cordon-sandbox/cordon/internal/cordontest"
)

// origin is a pair of loopback web servers on the host, plain and TLS
// (with a test CA), standing for the outside world. The gateway is told
// (CORDON_TEST_HOSTS, a hook only test builds have) that the test names
// resolve to 127.0.0.1.
type origin struct {
	httpPort, httpsPort string
	caFile              string
}

const originBody = "hello from the origin"

func startOrigin(t *testing.T, b *box, names ...string) *origin {
	t.Helper()
	tlsConf, caFile := testTLS(t, b, names...)
	o := &origin{caFile: caFile}

	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, originBody) })
	if repo := b.gitRepo(t); repo != "" {
		mux.Handle("/git/", http.StripPrefix("/git/", http.FileServer(http.Dir(repo))))
	}
	plain := cordontest.Listen(t, "tcp", "127.0.0.1:0")
	secure := cordontest.Listen(t, "tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(plain)
	tlsSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConf}
	go tlsSrv.ServeTLS(secure, "", "")
	t.Cleanup(func() { srv.Close(); tlsSrv.Close() })
	_, o.httpPort, _ = net.SplitHostPort(plain.Addr().String())
	_, o.httpsPort, _ = net.SplitHostPort(secure.Addr().String())
	return o
}

// testTLS makes a test CA and a certificate it signs for names; the CA's
// PEM is in caFile, readable by the box's user (cordon, run with
// SSL_CERT_FILE=caFile, takes it for the host's trust store).
func testTLS(t *testing.T, b *box, names ...string) (*tls.Config, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cordon test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	must(t, err)
	f, err := os.CreateTemp(b.base, "ca-*.pem")
	must(t, err)
	_, err = f.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	must(t, err)
	must(t, f.Close())
	must(t, os.Chmod(f.Name(), 0o644))
	b.u.Chown(t, f.Name())
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}}, f.Name()
}

// gitRepo makes a bare repository served over git's "dumb" HTTP protocol
// (plain files), and returns its parent directory ("" without git).
func (b *box) gitRepo(t *testing.T) string {
	if _, err := exec.LookPath("git"); err != nil {
		return ""
	}
	dir := filepath.Join(b.base, "srv")
	src := filepath.Join(b.base, "src")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", src},
		{"-C", src, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "first"},
		{"clone", "-q", "--bare", src, filepath.Join(dir, "repo.git")},
		{"-C", filepath.Join(dir, "repo.git"), "update-server-info"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// egressEnv names the test hosts for the gateway's test resolver.
func egressEnv(names ...string) []string {
	var kv []string
	for _, n := range names {
		kv = append(kv, n+"=127.0.0.1")
	}
	return []string{"CORDON_TEST_HOSTS=" + strings.Join(kv, ",")}
}

func (b *box) runNet(flags []string, extraEnv []string, argv ...string) result {
	b.t.Helper()
	args := append([]string{"run"}, flags...)
	args = append(args, "--")
	return b.cordon(nil, extraEnv, append(args, argv...)...)
}

// TestEgressClients runs real clients inside against the origin through
// the gateway: curl over HTTP, HTTPS (CONNECT) and SOCKS5, git clone over
// http and https, python's urllib and node's fetch where present. The
// names resolve to loopback, which the gateway refuses unless the policy
// names the address, so each run allows the name and 127.0.0.1:PORT.
func TestEgressClients(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	forEachUser(t, func(t *testing.T, b *box) {
		o := startOrigin(t, b, "app.test")
		env := egressEnv("app.test", "denied.test")
		allow := []string{"--allow-domain", "app.test",
			"--allow-domain", "127.0.0.1:" + o.httpPort, "--allow-domain", "127.0.0.1:" + o.httpsPort}
		plainURL := "http://app.test:" + o.httpPort + "/hello"
		tlsURL := "https://app.test:" + o.httpsPort + "/hello"

		checks := []struct {
			name string
			argv []string
		}{
			{"curl http", []string{"curl", "-fsS", plainURL}},
			{"curl https via CONNECT", []string{"curl", "-fsS", "--cacert", o.caFile, tlsURL}},
			// Without the HTTP proxy variables curl falls back to
			// ALL_PROXY, the SOCKS5 port, resolving names there.
			{"curl socks5", []string{"env", "-u", "http_proxy", "-u", "HTTP_PROXY", "curl", "-fsS", plainURL}},
			{"cordon connect", []string{"sh", "-c", fmt.Sprintf("printf 'GET /hello HTTP/1.0\\r\\nHost: app.test\\r\\n\\r\\n' | %s connect app.test %s", cordonBin, o.httpPort)}},
		}
		if _, err := exec.LookPath("git"); err == nil {
			checks = append(checks,
				struct {
					name string
					argv []string
				}{"git clone http", []string{"sh", "-c", "git clone -q http://app.test:" + o.httpPort + "/git/repo.git c1 && git -C c1 log --format=%s && echo " + originBody}},
				struct {
					name string
					argv []string
				}{"git clone https", []string{"sh", "-c", "GIT_SSL_CAINFO=" + o.caFile + " git clone -q https://app.test:" + o.httpsPort + "/git/repo.git c2 && echo " + originBody}},
			)
		}
		if py := systemPython(); py != "" {
			checks = append(checks, struct {
				name string
				argv []string
			}{"python urllib", []string{py, "-c", "import urllib.request; print(urllib.request.urlopen('" + plainURL + "').read().decode())"}})
		}
		if node := nodeWithEnvProxy(); node != "" {
			checks = append(checks, struct {
				name string
				argv []string
			}{"node fetch", []string{node, "-e", "fetch('" + plainURL + "').then(r => r.text()).then(console.log)"}})
		} else {
			t.Log("node fetch: skipped: no node that follows proxy variables (NODE_USE_ENV_PROXY needs Node 22.21 or 24)")
		}
		for _, c := range checks {
			t.Run(c.name, func(t *testing.T) {
				r := b.runNet(allow, env, c.argv...)
				if r.code != 0 || !strings.Contains(r.stdout, originBody) {
					t.Fatalf("%v through the gateway:\n%s", c.argv, r)
				}
			})
		}

		// Not allowed: refused, and said so.
		t.Run("denied", func(t *testing.T) {
			url := "http://denied.test:" + o.httpPort + "/hello"
			r := b.runNet(append([]string{"-v"}, allow...), env, "curl", "-sS", url)
			if strings.Contains(r.stdout, originBody) || !strings.Contains(r.stdout, "--allow-domain denied.test") {
				t.Errorf("a denied plain request:\n%s", r)
			}
			if !strings.Contains(r.stderr, "denied http denied.test:"+o.httpPort) {
				t.Errorf("no denial line on stderr with -v:\n%s", r)
			}
			r = b.runNet(allow, env, "curl", "-sS", "--cacert", o.caFile, "https://denied.test:"+o.httpsPort+"/hello")
			if r.code == 0 || !strings.Contains(r.stderr, "403") {
				t.Errorf("a denied CONNECT:\n%s", r)
			}
			// The name alone does not lift the guard on loopback.
			r = b.runNet([]string{"--allow-domain", "app.test"}, env, "curl", "-sS", plainURL)
			if strings.Contains(r.stdout, originBody) || !strings.Contains(r.stdout, "loopback") {
				t.Errorf("a name resolving to loopback, with the address not named:\n%s", r)
			}
			// No proxy: no way out at all.
			r = b.runNet(allow, env, "curl", "-sS", "--noproxy", "*", "http://127.0.0.1:"+o.httpPort+"/hello")
			if r.code == 0 || strings.Contains(r.stdout, originBody) {
				t.Errorf("a direct connection to the host's loopback:\n%s", r)
			}
		})

		t.Run("audit", func(t *testing.T) {
			path := filepath.Join(b.base, "audit.jsonl")
			r := b.runNet(append([]string{"--audit", path}, allow...), env, "sh", "-c",
				"curl -fsS "+plainURL+"; curl -sS http://denied.test:"+o.httpPort+"/")
			if r.code != 0 {
				t.Fatalf("run:\n%s", r)
			}
			f, err := os.Open(path)
			must(t, err)
			defer f.Close()
			evs, err := audit.Read(f)
			must(t, err)
			var kinds, decisions []string
			for _, e := range evs {
				kinds = append(kinds, e.Event)
				if e.Event == audit.KindConnection {
					decisions = append(decisions, e.Decision+" "+e.Host)
					if e.Decision == audit.Allow && (e.BytesDown == 0 || e.Addr != "127.0.0.1:"+o.httpPort) {
						t.Errorf("allowed connection event %+v", e)
					}
				}
			}
			want := "start connection connection end"
			if strings.Join(kinds, " ") != want || strings.Join(decisions, ",") != "allow app.test,deny denied.test" {
				t.Fatalf("audit events %v %v, want %s", kinds, decisions, want)
			}
			if evs[0].PolicyDigest == "" || evs[len(evs)-1].ExitCode == nil {
				t.Errorf("start/end events %+v %+v", evs[0], evs[len(evs)-1])
			}
			out, err := exec.Command(cordonBin, "audit", path).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "denied.test") {
				t.Errorf("cordon audit: %v\n%s", err, out)
			}
		})
	})
}

// systemPython is a python3 that any user can run ("" if none): not one
// under root's home.
func systemPython() string {
	for _, p := range []string{"/usr/bin/python3", "/usr/local/bin/python3"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// nodeWithEnvProxy is a node whose fetch follows the proxy variables.
func nodeWithEnvProxy() string {
	p, err := exec.LookPath("node")
	if err != nil {
		return ""
	}
	out, err := exec.Command(p, "-p", "process.versions.node").Output()
	if err != nil {
		return ""
	}
	var major, minor int
	fmt.Sscanf(strings.TrimSpace(string(out)), "%d.%d", &major, &minor)
	if major >= 24 || major == 22 && minor >= 21 {
		return p
	}
	return ""
}

// TestEgressRegistries fetches from the real package registries this
// machine is set up with (their hosts are read from npm's and go's own
// configuration), allowing only those hosts; then the same without them,
// which must be refused with the explanation. Skipped, with the reason,
// where the registries cannot be reached.
func TestEgressRegistries(t *testing.T) {
	type registry struct {
		name string
		host string
		argv []string
		env  []string
	}
	var regs []registry
	if npm, err := exec.LookPath("npm"); err == nil {
		if out, err := exec.Command(npm, "config", "get", "registry").Output(); err == nil {
			if host := urlHost(strings.TrimSpace(string(out))); host != "" {
				regs = append(regs, registry{"npm view", host,
					[]string{npm, "view", "is-number@7.0.0", "version"},
					[]string{"npm_config_cache=.npm-cache", "npm_config_update_notifier=false"}})
			}
		}
	}
	if goBin, err := exec.LookPath("go"); err == nil {
		if out, err := exec.Command(goBin, "env", "GOPROXY").Output(); err == nil {
			for _, p := range strings.FieldsFunc(strings.TrimSpace(string(out)), func(r rune) bool { return r == ',' || r == '|' }) {
				if host := urlHost(p); host != "" {
					regs = append(regs, registry{"go mod download", host,
						[]string{goBin, "mod", "download", "-json", "golang.org/x/sync@v0.10.0"},
						[]string{"GOPROXY=" + p, "GOSUMDB=off", "GOTOOLCHAIN=local", "GOFLAGS=-modcacherw",
							"GOMODCACHE=gomod", "GOCACHE=gocache", "GOPATH=gopath"}})
					break
				}
			}
		}
	}
	if len(regs) == 0 {
		t.Skip("neither npm nor go is configured with a registry here")
	}
	forEachUser(t, func(t *testing.T, b *box) {
		for _, reg := range regs {
			t.Run(reg.name, func(t *testing.T) {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(reg.host, "443"), 5*time.Second)
				if err != nil {
					t.Skipf("the registry of %s is not reachable from this machine: %v", reg.name, err)
				}
				c.Close()
				// Relative cache paths land in the workspace, a fresh
				// directory for each run: the second must not find
				// what the first downloaded.
				envFor := func(dir string) []string {
					env := make([]string, len(reg.env))
					for i, kv := range reg.env {
						name, v, _ := strings.Cut(kv, "=")
						if strings.HasSuffix(name, "cache") || strings.HasSuffix(name, "CACHE") || name == "GOPATH" {
							v = filepath.Join(b.ws, dir, v)
						}
						env[i] = name + "=" + v
					}
					return env
				}
				r := b.runNet([]string{"--allow-domain", reg.host}, envFor("allowed"), reg.argv...)
				if r.code != 0 {
					t.Fatalf("%s with %s allowed:\n%s", reg.name, reg.host, r)
				}
				env := envFor("denied")
				// Refused, and with -v Cordon says which flag allows it.
				r = b.runNet([]string{"-v"}, env, reg.argv...)
				if r.code == 0 || !strings.Contains(r.stderr, "to allow it: --allow-domain "+reg.host) {
					t.Fatalf("%s with nothing allowed:\n%s", reg.name, r)
				}
			})
		}
	})
}

// urlHost is the host of an http(s) URL, "" for anything else.
func urlHost(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	return u.Hostname()
}
