package secrets

import (
	"bytes"
	"math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Samples of each rule, made of pieces so that this file does not look
// like a leak to a secret scanner.
var samples = map[string]string{
	"aws-access-key-id": "AKIA" + "IOSFODNN7EXAMPLE",
	"github-token":      "ghp_" + strings.Repeat("aB3dE", 7) + "f",
	"github-pat":        "github_pat_" + "11ABCDEFG0" + strings.Repeat("x", 12) + "_" + strings.Repeat("Yz9", 19) + "Q0",
	"gitlab-token":      "glpat-" + "xY_z-" + strings.Repeat("a1", 8),
	"slack-token":       "xoxb-" + "1234567890-0987654321-" + "AbCdEfGhIjKlMnOpQrStUvWx",
	"private-key":       "-----BEGIN " + "OPENSSH PRIVATE KEY-----",
	"google-api-key":    "AIza" + "Sy" + strings.Repeat("A-b_C", 6) + "d1e",
	"stripe-key":        "sk_" + "live_" + strings.Repeat("4eC39HqLyjWDarjtT1zdp7dc", 1),
	"anthropic-key":     "sk-ant-" + "api03-" + strings.Repeat("Ab1_-", 18) + "xyzAA",
	"openai-key":        "sk-" + "proj-" + strings.Repeat("T3BlbkFJ", 6),
	"npm-token":         "npm_" + strings.Repeat("a1B2c3", 6),
	"pypi-token":        "pypi-" + "AgEIcHlwaS5vcmc" + strings.Repeat("CJDk3-_x", 8),
	"huggingface-token": "hf_" + strings.Repeat("abcDEFghiJKLmnoPQ", 2),
}

func TestRulesHaveSamples(t *testing.T) {
	var names []string
	for n := range samples {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, Rules()) {
		t.Errorf("samples cover %v, want Rules() = %v", names, Rules())
	}
	if !slices.IsSorted(Rules()) {
		t.Errorf("Rules() = %v, not sorted", Rules())
	}
}

func TestEveryPrefixHasAnAnchor(t *testing.T) {
	n := 0
	for _, a := range anchors {
		n += len(a.entries)
	}
	want := 0
	for _, r := range rules {
		want += len(r.prefixes)
	}
	if n != want {
		t.Errorf("anchors hold %d prefixes, want %d: a prefix holds none of %q", n, want, anchorBytes)
	}
}

func TestFindSamples(t *testing.T) {
	d := NewDetector(nil)
	for _, rule := range Rules() {
		s := samples[rule]
		for _, tmpl := range []string{"%s", `token = "%s"` + "\n", "Authorization: Bearer %s\r\n", "x=%s&y=1", "'%s'", "{\"k\":\"%s\"}"} {
			in := strings.Replace(tmpl, "%s", s, 1)
			f, ok := d.Find([]byte(in), "example.com")
			want := Finding{Rule: rule, Offset: strings.Index(tmpl, "%s"), Len: len(s), Encoding: "raw"}
			if !ok || f != want {
				t.Errorf("Find(%q) = %+v, %v; want %+v", tmpl, f, ok, want)
			}
		}
	}
}

func TestFindNearMisses(t *testing.T) {
	aws := samples["aws-access-key-id"]
	tests := []struct {
		name, in string
	}{
		{"aws lower case", strings.ToLower(aws[:4]) + aws[4:]},
		{"aws too short", aws[:19]},
		{"aws too long", aws + "A"},
		{"aws in a longer word", "x" + aws},
		{"aws followed by a digit", aws + "9"},
		{"aws followed by a lower-case letter", aws + "a"},
		{"aws with a digit outside base32", aws[:10] + "1" + aws[11:]},
		{"aws unknown prefix", "AKIB" + aws[4:]},
		{"github token too short", samples["github-token"][:39]},
		{"github token unknown kind", "ghx_" + samples["github-token"][4:]},
		{"github token in a word", "x" + samples["github-token"]},
		{"github token too long", "ghp_" + strings.Repeat("a", 256)},
		{"github pat too short", samples["github-pat"][:92]},
		{"github pat too long", samples["github-pat"] + "x"},
		{"gitlab token too short", samples["gitlab-token"][:25]},
		{"slack unknown kind", "xoxc-" + samples["slack-token"][5:]},
		{"slack too short", "xoxb-123456789"},
		{"public key", "-----BEGIN PUBLIC KEY-----"},
		{"certificate", "-----BEGIN CERTIFICATE-----"},
		{"private key header unfinished", "-----BEGIN RSA PRIVATE KEY"},
		{"private key of an unknown kind", "-----BEGIN FOO PRIVATE KEY-----"},
		{"google too short", samples["google-api-key"][:38]},
		{"google too long", samples["google-api-key"] + "x"},
		{"stripe test key", "sk_test_" + samples["stripe-key"][8:]},
		{"stripe too short", samples["stripe-key"][:31]},
		{"anthropic too short", samples["anthropic-key"][:92]},
		{"anthropic unknown kind", "sk-ant-api02-" + samples["anthropic-key"][13:]},
		{"openai legacy", "sk-" + strings.Repeat("T3BlbkFJ", 6)},
		{"openai too short", samples["openai-key"][:47]},
		{"npm too short", samples["npm-token"][:39]},
		{"npm too long", samples["npm-token"] + "x"},
		{"pypi too short", samples["pypi-token"][:69]},
		{"pypi another host", "pypi-AgEIcHlwaS5vcmd" + samples["pypi-token"][20:]},
		{"huggingface too short", samples["huggingface-token"][:36]},
		{"huggingface followed by a digit", samples["huggingface-token"] + "1"},
		{"huggingface in a word", "xhf_" + samples["huggingface-token"][3:]},
		{"ordinary code", `func (s *Server) task-queue(disk-usage, ghp, AKIA_SOMETHING, npm_config_cache, hf_hub_download, sk-learn)`},
	}
	d := NewDetector(nil)
	for _, tt := range tests {
		if f, ok := d.Find([]byte(tt.in), ""); ok {
			t.Errorf("%s: Find(%q) = %+v, want nothing", tt.name, tt.in, f)
		}
	}
}

// TestFindInRuns: a prefix whose anchor byte starts a run of it (the '-'
// of "glpat-" followed by a body that starts with '-').
func TestFindInRuns(t *testing.T) {
	for _, in := range []string{
		"glpat-" + "--" + strings.Repeat("a", 20),
		"x --- " + "glpat-" + "-" + strings.Repeat("a", 20),
		"sk-" + "proj-" + "---" + strings.Repeat("b", 40),
		"AAAA" + " " + samples["aws-access-key-id"],
	} {
		if _, ok := NewDetector(nil).Find([]byte(in), ""); !ok {
			t.Errorf("Find(%q) found nothing", in)
		}
	}
}

func TestFindFirst(t *testing.T) {
	in := "a " + samples["npm-token"] + " b " + samples["aws-access-key-id"] + " c " + samples["private-key"]
	f, ok := NewDetector(nil).Find([]byte(in), "")
	if !ok || f.Rule != "npm-token" || f.Offset != 2 {
		t.Errorf("Find = %+v, %v; want the npm token at 2", f, ok)
	}
	// The same, with the rules' anchors in the other order.
	in = "a " + samples["private-key"] + " b " + samples["npm-token"] + " c " + samples["aws-access-key-id"]
	f, ok = NewDetector(nil).Find([]byte(in), "")
	if !ok || f.Rule != "private-key" || f.Offset != 2 {
		t.Errorf("Find = %+v, %v; want the private key at 2", f, ok)
	}
}

func TestAllow(t *testing.T) {
	gh, aws := samples["github-token"], samples["aws-access-key-id"]
	tests := []struct {
		allow    []string
		in, host string
		want     string // the rule found, "" for none
	}{
		{nil, gh, "api.github.com", "github-token"},
		{[]string{"github-token"}, gh, "anywhere.example", ""},
		{[]string{"github-token"}, gh, "", ""},
		{[]string{"github-token"}, gh + " " + aws, "x", "aws-access-key-id"},
		{[]string{"github-token@api.github.com"}, gh, "api.github.com", ""},
		{[]string{"github-token@api.github.com"}, gh, "API.GitHub.com.", ""},
		{[]string{"github-token@api.github.com"}, gh, "api.github.com:443", ""},
		{[]string{"github-token@api.github.com"}, gh, "github.com", "github-token"},
		{[]string{"github-token@api.github.com"}, gh, "evil.example", "github-token"},
		{[]string{"github-token@api.github.com"}, gh, "xapi.github.com", "github-token"},
		{[]string{"github-token@api.github.com"}, gh, "", "github-token"},
		{[]string{"github-token@api.github.com"}, aws, "api.github.com", "aws-access-key-id"},
		{[]string{"github-token@*.example.com"}, gh, "a.example.com", ""},
		{[]string{"github-token@*.example.com"}, gh, "b.a.example.com", ""},
		{[]string{"github-token@*.example.com"}, gh, "example.com", "github-token"},
		{[]string{"github-token@*.example.com"}, gh, "badexample.com", "github-token"},
		{[]string{"github-token@*.example.com", "aws-access-key-id"}, gh + aws, "a.example.com", ""},
		{[]string{"github-token@10.1.2.3"}, gh, "10.1.2.3:8080", ""},
		{[]string{"private-key@::1"}, samples["private-key"], "[::1]:443", ""},
	}
	for _, tt := range tests {
		var allow []Allow
		for _, s := range tt.allow {
			a, err := ParseAllow(s)
			if err != nil {
				t.Fatalf("ParseAllow(%q): %v", s, err)
			}
			allow = append(allow, a)
		}
		f, ok := NewDetector(allow).Find([]byte(tt.in), tt.host)
		if f.Rule != tt.want || ok != (tt.want != "") {
			t.Errorf("allow %q: Find(%s, %q) = %q, %v; want %q", tt.allow, redact(tt.in), tt.host, f.Rule, ok, tt.want)
		}
	}
}

func TestParseAllow(t *testing.T) {
	tests := []struct {
		in      string
		want    Allow
		wantErr string
	}{
		{"github-token", Allow{Rule: "github-token"}, ""},
		{"github-token@api.github.com", Allow{"github-token", "api.github.com"}, ""},
		{"github-token@API.GitHub.com.", Allow{"github-token", "api.github.com"}, ""},
		{"npm-token@*.npmjs.org", Allow{"npm-token", "*.npmjs.org"}, ""},
		{"nope", Allow{}, `unknown rule "nope" (one of anthropic-key, aws-access-key-id,`},
		{"", Allow{}, `unknown rule ""`},
		{"@example.com", Allow{}, `unknown rule ""`},
		{"github-token@", Allow{}, `invalid host ""`},
		{"github-token@*.", Allow{}, `invalid host "*."`},
		{"github-token@*", Allow{}, `invalid host "*"`},
		{"github-token@foo.*.com", Allow{}, `invalid host`},
		{"github-token@a/b", Allow{}, `invalid host`},
		{"github-token@a b", Allow{}, `invalid host`},
		{"github-token@a@b", Allow{}, `invalid host`},
		{"github-token@a..b", Allow{}, `invalid host`},
		{"github-token@example.com:443", Allow{}, `invalid host`},
	}
	for _, tt := range tests {
		got, err := ParseAllow(tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseAllow(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseAllow(%q) = %+v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
		}
	}
}

func TestFindURLEncoded(t *testing.T) {
	aws := samples["aws-access-key-id"]
	d := NewDetector(nil)
	tests := []struct {
		name, in string
		rule     string
		offset   int // in the decoded bytes
	}{
		{"partly escaped", "q=" + aws[:4] + "%" + "49" + aws[5:], "aws-access-key-id", 2},
		{"first byte escaped", "q=%41" + aws[1:], "aws-access-key-id", 2},
		{"whole key in a form", "key=" + url.QueryEscape(samples["private-key"]+"\nMIIEvQIBADANBg+/=\n"), "private-key", 4},
		{"form spaces and escapes", "key=-----BEGIN+RSA+PRIVATE+KEY-----%0AMIIE", "private-key", 4},
		{"form spaces alone", "key=-----BEGIN+RSA+PRIVATE+KEY-----", "private-key", 4},
		{"escaped prefix", "t=" + strings.ReplaceAll(samples["github-token"][:4], "_", "%5F") + samples["github-token"][4:], "github-token", 2},
		{"after an escape that shifts it", "%25%25 " + samples["npm-token"][:3] + "%5f" + samples["npm-token"][4:], "npm-token", 3},
		{"right after an escape", "%0A" + aws, "aws-access-key-id", 1},
		{"right after an escape of a dash", "x=%2D" + aws, "aws-access-key-id", 3},
	}
	for _, tt := range tests {
		f, ok := d.Find([]byte(tt.in), "")
		want := Finding{Rule: tt.rule, Offset: tt.offset, Encoding: "url"}
		f.Len = 0
		if !ok || f != want {
			t.Errorf("%s: Find(%q) = %+v, %v; want %+v", tt.name, tt.in, f, ok, want)
		}
	}
	// A token in the clear is found as it is, escapes elsewhere or not.
	in := "%41 " + aws
	if f, ok := d.Find([]byte(in), ""); !ok || f.Encoding != "raw" || f.Offset != 4 {
		t.Errorf("Find(%q) = %+v, %v; want it raw at 4", in, f, ok)
	}
	// Escapes that are not: a '%' without two hex digits, and a '+' alone.
	for _, in := range []string{"100%", "%g1" + aws[:3] + "x", "50%+" + aws[:3]} {
		if f, ok := d.Find([]byte(in), ""); ok {
			t.Errorf("Find(%q) = %+v, want nothing", in, f)
		}
	}
	if got, want := string(urlDecode(nil, []byte("a%20b+c%2Bd%zz%4"))), "a b c+d%zz%4"; got != want {
		t.Errorf("urlDecode = %q, want %q", got, want)
	}
}

func TestRedacted(t *testing.T) {
	aws := samples["aws-access-key-id"]
	d := NewDetector(nil)
	b := []byte("id=" + aws)
	f, _ := d.Find(b, "")
	if got, want := f.Redacted(b), "AKIA…(20 bytes)"; got != want {
		t.Errorf("Redacted = %q, want %q", got, want)
	}
	b = []byte("id=%41" + aws[1:])
	f, _ = d.Find(b, "")
	if got, want := f.Redacted(b), "AKIA…(20 bytes)"; got != want {
		t.Errorf("Redacted of a URL-encoded finding = %q, want %q", got, want)
	}
	for _, f := range []Finding{{Offset: 100, Len: 3}, {Offset: -1, Len: 3}, {Offset: 2, Len: -1}, {Offset: 1, Len: 1 << 62}} {
		if got := f.Redacted(b); !strings.HasPrefix(got, "…") {
			t.Errorf("%+v.Redacted(%d bytes) = %q, want no characters", f, len(b), got)
		}
	}
	if got, want := (Finding{Offset: 0, Len: 2}).Redacted([]byte("\x00\xff")), "??…(2 bytes)"; got != want {
		t.Errorf("Redacted of binary = %q, want %q", got, want)
	}
}

// oracle is the rules written again as regular expressions, for FuzzFind:
// the prefix and the whole run of the alphabet after it, whose length and
// surroundings the fuzzer checks.
var oracle = map[string]*regexp.Regexp{
	"aws-access-key-id": regexp.MustCompile(`^(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]*`),
	"github-token":      regexp.MustCompile(`^gh[pousr]_[A-Za-z0-9]*`),
	"github-pat":        regexp.MustCompile(`^github_pat_[A-Za-z0-9_]*`),
	"gitlab-token":      regexp.MustCompile(`^glpat-[A-Za-z0-9_-]*`),
	"slack-token":       regexp.MustCompile(`^xox[abposr]-[A-Za-z0-9-]*`),
	"private-key":       regexp.MustCompile(`^-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----`),
	"google-api-key":    regexp.MustCompile(`^AIza[0-9A-Za-z_-]*`),
	"stripe-key":        regexp.MustCompile(`^(?:sk|rk)_live_[0-9A-Za-z]*`),
	"anthropic-key":     regexp.MustCompile(`^sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]*`),
	"openai-key":        regexp.MustCompile(`^sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]*`),
	"npm-token":         regexp.MustCompile(`^npm_[A-Za-z0-9]*`),
	"pypi-token":        regexp.MustCompile(`^pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]*`),
	"huggingface-token": regexp.MustCompile(`^hf_[A-Za-z]*`),
}

// oracleFind returns the leftmost token in b by the oracle, with its
// length (capped as maxRun caps it).
func oracleFind(b []byte) (Finding, bool) {
	isAlnum := func(i int) bool { return i >= 0 && i < len(b) && alnum[b[i]] }
	for i := range b {
		for _, r := range rules {
			// A window: the longest prefix and maxRun, and then some; a
			// longer run is capped, and longer than any bounded rule.
			m := oracle[r.name].Find(b[i:min(len(b), i+maxRun+64)])
			if m == nil {
				continue
			}
			n := len(m)
			if r.match == nil {
				body := n - prefixLen(r, m)
				// A run past maxRun is reported capped, whatever
				// follows it (the detector stops reading there).
				capped := r.max == 0 && body > maxRun
				if isAlnum(i-1) || !capped && isAlnum(i+n) || body < r.min || r.max > 0 && body > r.max {
					continue
				}
				n = min(n, prefixLen(r, m)+maxRun)
			}
			return Finding{Rule: r.name, Offset: i, Len: n}, true
		}
	}
	return Finding{}, false
}

func prefixLen(r *rule, m []byte) int {
	for _, p := range r.prefixes {
		if bytes.HasPrefix(m, []byte(p)) {
			return len(p)
		}
	}
	panic("no prefix of " + r.name)
}

// hasEscape reports whether b holds a %XX escape: when the oracle looks
// again, in b decoded (or when it holds a form's private key header).
func hasEscape(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '%')
		if i < 0 {
			return false
		}
		if i+2 < len(b) && unhex(b[i+1]) >= 0 && unhex(b[i+2]) >= 0 {
			return true
		}
		b = b[i+1:]
	}
}

func TestTokenBytes(t *testing.T) {
	for _, r := range rules {
		for _, p := range r.prefixes {
			for _, c := range []byte(p) {
				if !tokenByte[c] {
					t.Errorf("%s: prefix %q has %q, not in tokenByte", r.name, p, c)
				}
			}
		}
		for c := range 256 {
			if r.alphabet != nil && r.alphabet[c] && !tokenByte[c] {
				t.Errorf("%s: alphabet has %q, not in tokenByte", r.name, byte(c))
			}
		}
	}
	for _, c := range []byte("RSA EC DSA OPENSSH ENCRYPTED PGP PRIVATE KEY BLOCK-----") {
		if !tokenByte[c] {
			t.Errorf("private key headers have %q, not in tokenByte", c)
		}
	}
}

func FuzzFind(f *testing.F) {
	for _, s := range samples {
		f.Add([]byte("x "+s+" y"), "example.com")
		f.Add([]byte(url.QueryEscape("k="+s)), "")
	}
	f.Add([]byte("%41KIA"+samples["aws-access-key-id"][4:]), "a.example.com:443")
	f.Add([]byte("%0A"+samples["aws-access-key-id"]+"%0A"), "")
	f.Add([]byte("x%2"+samples["npm-token"]), "")
	f.Add([]byte("-----BEGIN+RSA+PRIVATE+KEY-----%0A"), "")
	f.Add([]byte("sk-proj-sk-proj-sk-proj-"+strings.Repeat("a", 50)), "[::1]")
	d := NewDetector(nil)
	allowAll := NewDetector(func() []Allow {
		var as []Allow
		for _, r := range Rules() {
			as = append(as, Allow{Rule: r})
		}
		return as
	}())
	f.Fuzz(func(t *testing.T, b []byte, host string) {
		got, ok := d.Find(b, host)
		scanned := b
		if ok && got.Encoding == "url" {
			scanned = urlDecode(nil, b)
		}
		if ok && (got.Offset < 0 || got.Len <= 0 || got.Offset+got.Len > len(scanned)) {
			t.Fatalf("Find = %+v, out of the %d bytes scanned", got, len(scanned))
		}
		if ok {
			r := got.Redacted(b)
			head, _, _ := strings.Cut(r, "…")
			if utf8.RuneCountInString(head) > 4 || !strings.HasSuffix(r, "bytes)") {
				t.Fatalf("Redacted = %q, shows more than 4 characters", r)
			}
		}

		want, wantOK := oracleFind(b)
		if wantOK {
			want.Encoding = "raw"
		} else if hasEscape(b) || bytes.Contains(b, []byte("-----BEGIN+")) {
			want, wantOK = oracleFind(urlDecode(nil, b))
			want.Encoding = "url"
		}
		if ok != wantOK || ok && got != want {
			t.Fatalf("Find(%q) = %+v, %v; the oracle says %+v, %v", b, got, ok, want, wantOK)
		}
		if f, ok := allowAll.Find(b, host); ok {
			t.Fatalf("Find with every rule allowed = %+v", f)
		}
	})
}

// codeLike is text like a Go source file, with printf verbs (%02x is a
// valid escape, so Find decodes and scans a second time), identifiers near
// the rules' prefixes, dashes and underscores.
func codeLike(n int) []byte {
	lines := []string{
		"func (s *Server) handle(w http.ResponseWriter, r *http.Request) {\n",
		"\tif err != nil {\n\t\treturn fmt.Errorf(\"reading %s: %w\", name, err)\n\t}\n",
		"// Package github.com/cordon-sandbox/cordon/internal/gateway watches the task-queue and the disk-usage.\n",
		"\tfor i, x := range xs {\n\t\ttotal += x.Size\n\t\tnames = append(names, x.Name)\n\t}\n",
		"\tASIAN, ACCESS, ABIDE, AKIMBO := 1, 2, 3, 4 // gh-pages hf_model npm_config sk-learn pypi-upload\n",
		"\tlog.Printf(\"%02x %08d %v\", id, n, thing)\n",
		"\tconst highlight = \"rightmost thought through the night\"\n",
		"// ------------------------------------------------------------------\n",
		"\tx := strings.TrimSpace(string(b[:n])) // rk_list sk_list xoxo xo\n",
		"\tm := map[string]int{\"max_retries\": 3, \"read_timeout_ms\": 500, \"AIzone\": 1}\n",
		"\tcase <-ctx.Done():\n\t\treturn ctx.Err()\n",
	}
	r := rand.New(rand.NewPCG(1, 2))
	var b []byte
	for len(b) < n {
		b = append(b, lines[r.IntN(len(lines))]...)
	}
	return b[:n]
}

func BenchmarkFind(b *testing.B) {
	code := codeLike(1 << 20)
	noEscapes := bytes.ReplaceAll(code, []byte("%02x %08d"), []byte("%s %d     "))
	b64 := make([]byte, 1<<20)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	r := rand.New(rand.NewPCG(3, 4))
	for i := range b64 {
		b64[i] = alphabet[r.IntN(64)]
	}
	nearMisses := bytes.Repeat([]byte("AKIA-ghp_-sk-proj-_AIza_-----BEGIN x "), 1<<20/37+1)[:1<<20]
	for _, bm := range []struct {
		name string
		b    []byte
	}{
		{"code", code},
		{"code-without-escapes", noEscapes},
		{"code-form-encoded", []byte(url.QueryEscape(string(code)))},
		{"base64", b64},
		{"near-misses", nearMisses},
	} {
		b.Run(bm.name, func(b *testing.B) {
			d := NewDetector(nil)
			b.SetBytes(int64(len(bm.b)))
			for b.Loop() {
				if f, ok := d.Find(bm.b, "example.com"); ok {
					b.Fatalf("Find = %+v in %s", f, bm.name)
				}
			}
		})
	}
}
