package secrets

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
)

// Finding is a token of a well-known format.
type Finding struct {
	Rule     string // "aws-access-key-id", "github-token", "private-key", ... (see Rules)
	Offset   int    // where the token starts in the scanned bytes
	Len      int
	Encoding string // "raw": Offset and Len count in the bytes as given; "url": in them percent-decoded once
}

// Redacted returns the token of f in b (the bytes Find was given), safe to
// log: its first 4 characters, which the rule's prefix fixes, and its
// length, as "AKIA…(20 bytes)".
func (f Finding) Redacted(b []byte) string {
	if f.Encoding == "url" {
		b = urlDecode(nil, b)
	}
	if f.Offset < 0 || f.Len < 0 || f.Offset > len(b) || f.Len > len(b)-f.Offset {
		return fmt.Sprintf("…(%d bytes)", f.Len)
	}
	head := []byte(string(b[f.Offset : f.Offset+min(4, f.Len)]))
	for i, c := range head {
		if c < ' ' || c > '~' {
			head[i] = '?'
		}
	}
	return fmt.Sprintf("%s…(%d bytes)", head, f.Len)
}

// Allow lets a rule's tokens through, anywhere or to some hosts.
type Allow struct {
	Rule string // a name of Rules
	Host string // "": anywhere; "example.com": that host; "*.example.com": its subdomains, not itself
}

// ParseAllow reads "RULE" or "RULE@HOST": HOST is a host name, "*." and
// a domain for its subdomains, or an IP address (an IPv6 one bracketed or
// not). A port is no part of it.
func ParseAllow(s string) (Allow, error) {
	name, host, at := strings.Cut(s, "@")
	if !slices.Contains(Rules(), name) {
		return Allow{}, fmt.Errorf("allowing secrets %q: unknown rule %q (one of %s)", s, name, strings.Join(Rules(), ", "))
	}
	if !at {
		return Allow{Rule: name}, nil
	}
	if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); ip != nil {
		return Allow{Rule: name, Host: normHost(host)}, nil
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	bare := strings.TrimPrefix(h, "*.")
	if bare == "" || strings.ContainsAny(bare, "*@/ \t:[]") || strings.HasPrefix(bare, ".") || strings.Contains(bare, "..") {
		return Allow{}, fmt.Errorf("allowing secrets %q: invalid host %q (want example.com or *.example.com)", s, host)
	}
	return Allow{Rule: name, Host: h}, nil
}

// covers reports whether a lets rule's tokens go to host (normalised by
// normHost).
func (a Allow) covers(rule, host string) bool {
	if a.Rule != rule {
		return false
	}
	if a.Host == "" {
		return true
	}
	if sub, ok := strings.CutPrefix(a.Host, "*"); ok {
		return len(host) > len(sub) && strings.HasSuffix(host, sub)
	}
	return host == a.Host
}

// normHost lower-cases a host name and drops a trailing dot, a port and the
// brackets of an IPv6 literal.
func normHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// Detector finds tokens of the rules in bytes on their way to a host. It
// is not changed after NewDetector and is safe for concurrent use.
type Detector struct {
	allow []Allow
	bufs  sync.Pool // of *[]byte, for the percent-decoded copy
}

// NewDetector returns a Detector that lets through what allow allows. An
// Allow made by hand rather than by ParseAllow, with an unknown rule,
// allows nothing.
func NewDetector(allow []Allow) *Detector {
	d := &Detector{}
	for _, a := range allow {
		if a.Host != "" {
			a.Host = normHost(a.Host)
		}
		d.allow = append(d.allow, a)
	}
	return d
}

func (d *Detector) allowed(rule, host string) bool {
	for _, a := range d.allow {
		if a.covers(rule, host) {
			return true
		}
	}
	return false
}

// Find returns the first token in b, on its way to host, that no Allow
// lets through: the leftmost in b as given, or, if there is none there
// and b holds a %XX escape (or a private key header with '+' for its
// spaces, as an HTML form sends it), the leftmost in b percent-decoded
// once and '+' read as a space, with Encoding "url" and Offset and Len
// counting in the decoded bytes. host "" is matched by Allows for anywhere
// only.
func (d *Detector) Find(b []byte, host string) (Finding, bool) {
	host = normHost(host)
	if f, ok := d.find(b, host); ok {
		f.Encoding = "raw"
		return f, true
	}
	if !mayHide(b) {
		return Finding{}, false
	}
	buf, _ := d.bufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	*buf = urlDecode((*buf)[:0], b)
	f, ok := d.find(*buf, host)
	if cap(*buf) <= 4<<20 {
		d.bufs.Put(buf)
	}
	if !ok {
		return Finding{}, false
	}
	f.Encoding = "url"
	return f, true
}

// find returns the leftmost token in b that is not allowed to host. Each
// anchor byte is looked for in turn; once a token is found, the later
// searches stop where a prefix could no longer start before it.
func (d *Detector) find(b []byte, host string) (Finding, bool) {
	best := Finding{Offset: -1}
	for _, a := range anchors {
		limit := len(b)
		for i := 0; ; i++ {
			if best.Offset >= 0 {
				limit = min(len(b), best.Offset+a.maxK)
			}
			if i >= limit {
				break
			}
			j := bytes.IndexByte(b[i:limit], a.c)
			if j < 0 {
				break
			}
			i += j
			if a.maybe(b, i) {
				for _, e := range a.entries {
					s := i - e.k
					if s < 0 || best.Offset >= 0 && s >= best.Offset || !bytes.HasPrefix(b[s:], e.prefix) {
						continue
					}
					if n := e.rule.matchAt(b, s, len(e.prefix)); n > 0 && !d.allowed(e.rule.name, host) {
						best = Finding{Rule: e.rule.name, Offset: s, Len: n}
					}
				}
			}
			if a.skipRuns {
				for i+1 < len(b) && b[i+1] == a.c {
					i++
				}
			}
		}
	}
	return best, best.Offset >= 0
}

// mayHide reports whether b percent-decoded could show a token that b as
// given does not, which takes an escape that decodes to a byte of a token
// (A%4BIA..., -----BEGIN%20RSA...), or one that stands right before a
// token, whose hex digits keep it from starting a word (%0AAKIA...), or a
// private key header whose spaces are '+'. Anything else decodes to the
// same tokens at other offsets: a '%' or a '+' after a token ends it as the
// byte it decodes to would. Printf verbs (%02x, %08d) are escapes, so that
// code would be decoded and scanned twice without this.
func mayHide(b []byte) bool {
	if bytes.Contains(b, []byte("-----BEGIN+")) {
		return true
	}
	for {
		i := bytes.IndexByte(b, '%')
		if i < 0 {
			return false
		}
		if i+2 < len(b) && unhex(b[i+1]) >= 0 && unhex(b[i+2]) >= 0 {
			if tokenByte[unhex(b[i+1])<<4|unhex(b[i+2])] || startsToken(b[i+3:]) {
				return true
			}
			b = b[i+3:]
			continue
		}
		b = b[i+1:]
	}
}

// tokenByte holds the bytes of the rules' prefixes, alphabets and private
// key headers (TestTokenBytes).
var tokenByte = class("A-Za-z0-9_ -")

// startsToken reports whether b starts with a token, if what comes before
// it is no letter or digit. The token's bytes are as they will be decoded:
// an escape among them that decodes to a byte of a token is seen by
// mayHide itself, and any other ends the token, decoded or not.
func startsToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, e := range byFirstByte[b[0]] {
		if bytes.HasPrefix(b, e.prefix) && e.rule.matchAt(b, 0, len(e.prefix)) > 0 {
			return true
		}
	}
	return false
}

// byFirstByte holds the prefixes by their first byte.
var byFirstByte = func() *[256][]anchorEntry {
	var f [256][]anchorEntry
	for _, r := range rules {
		for _, p := range r.prefixes {
			f[p[0]] = append(f[p[0]], anchorEntry{prefix: []byte(p), rule: r})
		}
	}
	return &f
}()

// urlDecode appends b to dst with each %XX escape decoded, once, and '+'
// read as a space (HTML forms write spaces so); a '%' that starts no escape
// stays as it is.
func urlDecode(dst, b []byte) []byte {
	for {
		i := bytes.IndexByte(b, '%')
		if i < 0 {
			return appendPlain(dst, b)
		}
		dst = appendPlain(dst, b[:i])
		if i+2 < len(b) && unhex(b[i+1]) >= 0 && unhex(b[i+2]) >= 0 {
			dst = append(dst, byte(unhex(b[i+1])<<4|unhex(b[i+2])))
			b = b[i+3:]
			continue
		}
		dst = append(dst, '%')
		b = b[i+1:]
	}
}

// appendPlain appends b, which holds no escape, with '+' made a space.
func appendPlain(dst, b []byte) []byte {
	for {
		i := bytes.IndexByte(b, '+')
		if i < 0 {
			return append(dst, b...)
		}
		dst = append(append(dst, b[:i]...), ' ')
		b = b[i+1:]
	}
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
