package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/cordontest"
)

// TestInspectClients: with --inspect, real clients inside reach an HTTPS
// origin whose certificate only the host trusts (cordon gets the test CA
// as its SSL_CERT_FILE, the host's trust store as far as it knows): they
// can only have trusted the run's CA, which the sandbox sees in its
// system trust store and in the variables each tool reads. An origin
// whose certificate the host does not trust is refused; HTTP rules refuse
// what they do not list.
func TestInspectClients(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	forEachUser(t, func(t *testing.T, b *box) {
		o := startOrigin(t, b, "app.test")
		env := append(egressEnv("app.test"), "SSL_CERT_FILE="+o.caFile)
		url := "https://app.test:" + o.httpsPort + "/hello"
		flags := []string{"--allow-domain", "app.test", "--allow-domain", "127.0.0.1:" + o.httpsPort, "--inspect", "app.test"}

		type check struct {
			name string
			argv []string
		}
		checks := []check{
			{"curl", []string{"curl", "-fsS", url}},
			// The system store itself, as tools that read no variable see it.
			{"curl, system store", []string{"sh", "-c", "unset CURL_CA_BUNDLE SSL_CERT_FILE; curl -fsS --capath /nonexistent --cacert /etc/ssl/certs/ca-certificates.crt " + url}},
		}
		if _, err := exec.LookPath("git"); err == nil {
			checks = append(checks, check{"git clone", []string{"sh", "-c", "git clone -q https://app.test:" + o.httpsPort + "/git/repo.git c && echo " + originBody}})
		}
		if py := systemPython(); py != "" {
			checks = append(checks, check{"python urllib", []string{py, "-c", "import urllib.request; print(urllib.request.urlopen('" + url + "').read().decode())"}})
		}
		if node, err := exec.LookPath("node"); err == nil {
			// A CONNECT by hand, then TLS over it: what any node does
			// through a proxy, checked against NODE_EXTRA_CA_CERTS.
			script := fmt.Sprintf(`const http=require('http'),tls=require('tls');
const r=http.request({host:'127.0.0.1',port:3128,method:'CONNECT',path:'app.test:%[1]s'});
r.on('connect',(res,sock)=>{
  if(res.statusCode!==200){console.error('CONNECT',res.statusCode);process.exit(1)}
  const s=tls.connect({socket:sock,servername:'app.test'},()=>s.write('GET /hello HTTP/1.1\r\nHost: app.test:%[1]s\r\nConnection: close\r\n\r\n'));
  let d='';s.on('data',c=>d+=c);s.on('end',()=>console.log(d));s.on('error',e=>{console.error(e.message);process.exit(1)});
});
r.end();`, o.httpsPort)
			checks = append(checks, check{"node tls", []string{node, "-e", script}})
		} else {
			t.Log("node: skipped: not installed")
		}
		for _, c := range checks {
			t.Run(c.name, func(t *testing.T) {
				r := b.runNet(flags, env, c.argv...)
				if r.code != 0 || !strings.Contains(r.stdout, originBody) {
					t.Fatalf("%v through an inspected tunnel:\n%s", c.argv, r)
				}
			})
		}

		t.Run("untrusted origin", func(t *testing.T) {
			// Without the test CA, the host trusts its system roots only.
			r := b.runNet(flags, egressEnv("app.test"), "curl", "-sS", url)
			if strings.Contains(r.stdout, originBody) || !strings.Contains(r.stdout, "did not verify against this host's trust store") {
				t.Errorf("an origin the host does not trust:\n%s", r)
			}
		})

		t.Run("HTTP rules", func(t *testing.T) {
			ruled := []string{"--allow-domain", "app.test", "--allow-domain", "127.0.0.1:" + o.httpsPort, "--inspect", "app.test GET /hello"}
			r := b.runNet(ruled, env, "sh", "-c", "curl -fsS "+url+" && curl -sS -X POST -d x "+url+" && curl -sS https://app.test:"+o.httpsPort+"/git/")
			if r.code != 0 || strings.Count(r.stdout, originBody) != 1 || strings.Count(r.stdout, "is not among the HTTP requests allowed") != 2 {
				t.Errorf("GET /hello allowed, POST and /git/ refused:\n%s", r)
			}
		})
	})
}

// tokenServer is an HTTPS API on loopback that wants a bearer token: it
// records each Authorization it gets, and answers only "ok" or "no" (never
// echoing a token back into the sandbox).
type tokenServer struct {
	port, caFile string
	mu           sync.Mutex
	auth         []string
}

func startTokenServer(t *testing.T, b *box, name, want string) *tokenServer {
	ts := &tokenServer{}
	conf, caFile := testTLS(t, b, name)
	ts.caFile = caFile
	l := cordontest.Listen(t, "tcp", "127.0.0.1:0")
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, TLSConfig: conf, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts.mu.Lock()
		ts.auth = append(ts.auth, r.Header.Get("Authorization")+" "+r.URL.RawQuery+" "+string(body))
		ts.mu.Unlock()
		if r.Header.Get("Authorization") == "Bearer "+want {
			io.WriteString(w, "ok: the real token arrived\n")
			return
		}
		http.Error(w, "no", http.StatusUnauthorized)
	})}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	_, ts.port, _ = net.SplitHostPort(l.Addr().String())
	return ts
}

func (ts *tokenServer) seen() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return strings.Join(ts.auth, "\n")
}

// TestSecretInjection: --secret API_TOKEN=api.test. Inside, $API_TOKEN is
// a placeholder, and nothing inside ever holds the value; a request to
// api.test arrives with the real token; the placeholder sent to another
// allowed host is refused, so that host never sees the token nor the
// placeholder.
func TestSecretInjection(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	const token = "tok-REAL-0123456789abcdef0123456789"
	forEachUser(t, func(t *testing.T, b *box) {
		api := startTokenServer(t, b, "api.test", token)
		other := startTokenServer(t, b, "other.test", token)
		// One trust store on the host side for both test CAs.
		bundle := b.base + "/roots.pem"
		must(t, exec.Command("sh", "-c", "cat "+api.caFile+" "+other.caFile+" > "+bundle+" && chmod 644 "+bundle).Run())
		env := append(egressEnv("api.test", "other.test"), "SSL_CERT_FILE="+bundle, "API_TOKEN="+token)
		flags := []string{
			"--secret", "API_TOKEN=api.test",
			"--allow-domain", "127.0.0.1:" + api.port, "--allow-domain", "127.0.0.1:" + other.port,
			"--allow-domain", "other.test", "--inspect", "other.test",
		}
		script := fmt.Sprintf(`echo "inside: $API_TOKEN"
curl -sS -H "Authorization: Bearer $API_TOKEN" https://api.test:%[1]s/
curl -sS -H "Authorization: Bearer $API_TOKEN" https://other.test:%[2]s/
curl -sS -d "token=$API_TOKEN" https://other.test:%[2]s/
env | grep -c %[3]s; cat /proc/self/environ | tr '\0' '\n' | grep -c %[3]s; true`, api.port, other.port, token[:12])
		r := b.runNet(flags, env, "sh", "-c", script)
		if r.code != 0 {
			t.Fatalf("run:\n%s", r)
		}
		if strings.Contains(r.stdout, token) || strings.Contains(r.stderr, token) {
			t.Errorf("the token's value is visible inside:\n%s", r)
		}
		if !strings.Contains(r.stdout, "inside: cordon-placeholder-") {
			t.Errorf("$API_TOKEN inside is not a placeholder:\n%s", r)
		}
		if !strings.Contains(r.stdout, "ok: the real token arrived") {
			t.Errorf("api.test did not get the real token:\n%s\napi.test saw:\n%s", r, api.seen())
		}
		if strings.Count(r.stdout, "blocked: the placeholder of secret API_TOKEN") != 2 {
			t.Errorf("the placeholder to other.test, in a header and a body, was not refused twice:\n%s", r)
		}
		if seen := other.seen(); seen != "" {
			t.Errorf("other.test got requests:\n%s", seen)
		}
		if seen := api.seen(); strings.Contains(seen, "cordon-placeholder-") || !strings.Contains(seen, "Bearer "+token) {
			t.Errorf("api.test saw:\n%s", seen)
		}
		if !strings.Contains(r.stderr, "cordon: blocked") {
			t.Errorf("cordon did not say on its stderr what it blocked:\n%s", r)
		}
	})
}
