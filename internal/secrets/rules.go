package secrets

import (
	"bytes"
	"slices"
	"strings"
)

// A rule is one token format: one of some literal prefixes, then a run of
// bytes of an alphabet, min to max long (max 0: no limit). The run is
// taken whole: it must be followed by a byte that is neither of the
// alphabet nor a letter or digit, and the prefix must not follow a letter
// or digit, so that a token is not the middle of a longer word (base64, a
// hash, an identifier). A rule with match instead checks the bytes after
// its prefix itself.
type rule struct {
	name     string
	prefixes []string
	alphabet *[256]bool
	min, max int
	match    func(b []byte) int // the length of the match at the start of b, after the prefix, or -1
}

// rules are the formats, each from its issuer's documentation or from the
// tokens it issues.
var rules = []*rule{
	// AWS: long-term key ids (AKIA), temporary ones from STS (ASIA), and
	// two rarer kinds (ABIA, ACCA); base32 after the prefix.
	{name: "aws-access-key-id", prefixes: []string{"AKIA", "ASIA", "ABIA", "ACCA"}, alphabet: class("A-Z2-7"), min: 16, max: 16},
	// Classic GitHub tokens: personal (ghp_), OAuth (gho_), user-to-server
	// (ghu_), server-to-server (ghs_), refresh (ghr_).
	{name: "github-token", prefixes: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}, alphabet: class("A-Za-z0-9"), min: 36, max: 255},
	// Fine-grained personal access tokens: 22 characters, '_', 59.
	{name: "github-pat", prefixes: []string{"github_pat_"}, alphabet: class("A-Za-z0-9_"), min: 82, max: 82},
	{name: "gitlab-token", prefixes: []string{"glpat-"}, alphabet: class("A-Za-z0-9_-"), min: 20},
	{name: "slack-token", prefixes: []string{"xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"}, alphabet: class("A-Za-z0-9-"), min: 10},
	{name: "private-key", prefixes: []string{"-----BEGIN "}, match: privateKeyHeader},
	{name: "google-api-key", prefixes: []string{"AIza"}, alphabet: class("0-9A-Za-z_-"), min: 35, max: 35},
	{name: "stripe-key", prefixes: []string{"sk_live_", "rk_live_"}, alphabet: class("0-9A-Za-z"), min: 24},
	{name: "anthropic-key", prefixes: []string{"sk-ant-api03-", "sk-ant-admin01-"}, alphabet: class("A-Za-z0-9_-"), min: 80},
	{name: "openai-key", prefixes: []string{"sk-proj-", "sk-svcacct-", "sk-admin-"}, alphabet: class("A-Za-z0-9_-"), min: 40},
	{name: "npm-token", prefixes: []string{"npm_"}, alphabet: class("A-Za-z0-9"), min: 36, max: 36},
	// PyPI's tokens are macaroons whose first bytes say "pypi.org".
	{name: "pypi-token", prefixes: []string{"pypi-AgEIcHlwaS5vcmc"}, alphabet: class("A-Za-z0-9_-"), min: 50},
	{name: "huggingface-token", prefixes: []string{"hf_"}, alphabet: class("A-Za-z"), min: 34, max: 34},
}

// maxRun bounds the run of a rule without a maximum length: past it, the
// token is reported with this length. Without a bound, data made of one
// prefix repeated ("sk-proj-sk-proj-...", whose '-' is of the alphabet)
// would cost the square of its length.
const maxRun = 1024

// privateKeyHeader matches what follows "-----BEGIN " in the header of a
// PEM or PGP private key.
func privateKeyHeader(b []byte) int {
	n := 0
	for _, t := range []string{"RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED ", "PGP "} {
		if bytes.HasPrefix(b, []byte(t)) {
			n = len(t)
			break
		}
	}
	if !bytes.HasPrefix(b[n:], []byte("PRIVATE KEY")) {
		return -1
	}
	n += len("PRIVATE KEY")
	if bytes.HasPrefix(b[n:], []byte(" BLOCK")) {
		n += len(" BLOCK")
	}
	if !bytes.HasPrefix(b[n:], []byte("-----")) {
		return -1
	}
	return n + len("-----")
}

// matchAt returns the length of the token of r at b[s:], whose first
// prefixLen bytes are one of r's prefixes, or 0.
func (r *rule) matchAt(b []byte, s, prefixLen int) int {
	j := s + prefixLen
	if r.match != nil {
		n := r.match(b[j:])
		if n < 0 {
			return 0
		}
		return prefixLen + n
	}
	if s > 0 && alnum[b[s-1]] {
		return 0
	}
	limit := r.max
	if limit == 0 {
		limit = maxRun
	}
	n := 0
	for j+n < len(b) && n <= limit && r.alphabet[b[j+n]] {
		n++
	}
	switch {
	case n < r.min:
		return 0
	case r.max == 0 && n > maxRun:
		n = maxRun // long enough: the rest does not change the verdict
	case n > limit:
		return 0
	case j+n < len(b) && alnum[b[j+n]]:
		return 0
	}
	return prefixLen + n
}

// class returns the set of bytes of a character class: single bytes, and
// ranges a-z; a '-' at the end stands for itself.
func class(spec string) *[256]bool {
	var c [256]bool
	for i := 0; i < len(spec); i++ {
		if i+2 < len(spec) && spec[i+1] == '-' {
			for x := int(spec[i]); x <= int(spec[i+2]); x++ {
				c[x] = true
			}
			i += 2
			continue
		}
		c[spec[i]] = true
	}
	return &c
}

var alnum = class("A-Za-z0-9")

// An anchor is a byte that every occurrence of some prefixes holds at a
// known place: Find looks for anchors with bytes.IndexByte, which runs
// over bytes it does not want at memory speed, and checks the prefixes
// only where it finds one and the bytes beside it could be theirs.
type anchor struct {
	c       byte
	entries []anchorEntry
	maxK    int // the largest k of entries

	// The bytes beside the anchor that some prefix has there: the byte
	// after it, of prefixes that start with the anchor; the one before;
	// the two before, as a bit set of their uint16.
	next, prev [256]bool
	prev2      [1 << 16 / 64]uint64

	// No prefix has the anchor twice in a row at its anchor: in a run of
	// it (a rule of dashes, ____), only the first can be a prefix's.
	skipRuns bool
}

// An anchorEntry is a prefix whose first anchor byte is at k.
type anchorEntry struct {
	prefix []byte
	k      int
	rule   *rule
}

// anchorBytes are the anchors, rarest in source code and prose first: each
// prefix is anchored on the first of them it holds. Every prefix of rules
// holds one (TestEveryPrefixHasAnAnchor). 'B' is there for "-----BEGIN ",
// which '-' would anchor at every dash of a rule drawn with dashes.
const anchorBytes = "AB_-"

var anchors = makeAnchors()

func makeAnchors() []*anchor {
	var as []*anchor
	for _, c := range []byte(anchorBytes) {
		as = append(as, &anchor{c: c, skipRuns: true})
	}
	for _, r := range rules {
		for _, p := range r.prefixes {
			for _, a := range as {
				k := strings.IndexByte(p, a.c)
				if k < 0 {
					continue
				}
				a.entries = append(a.entries, anchorEntry{prefix: []byte(p), k: k, rule: r})
				a.maxK = max(a.maxK, k)
				if k == 0 || p[k-1] == a.c {
					a.skipRuns = false
				}
				switch {
				case k == 0:
					a.next[p[1]] = true // every prefix is 2 bytes or more
				case k == 1:
					a.prev[p[0]] = true
				default:
					w := uint16(p[k-2])<<8 | uint16(p[k-1])
					a.prev2[w/64] |= 1 << (w % 64)
				}
				break
			}
		}
	}
	return as
}

// maybe reports whether a prefix anchored on a at b[i] could start near it.
func (a *anchor) maybe(b []byte, i int) bool {
	if i+1 < len(b) && a.next[b[i+1]] || i >= 1 && a.prev[b[i-1]] {
		return true
	}
	if i < 2 {
		return false
	}
	w := uint16(b[i-2])<<8 | uint16(b[i-1])
	return a.prev2[w/64]&(1<<(w%64)) != 0
}

// Rules returns the names of the rules, sorted.
func Rules() []string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.name
	}
	slices.Sort(names)
	return names
}
