package gateway

import (
	"fmt"
	"io"
	"strings"

	"github.com/cordon-sandbox/cordon/internal/canary"
)

// Tripped is a watched token found in what a client tried to send out: a
// canary (a decoy credential was read and is leaving), or another token of
// Config.Tokens, or a token format (Config.Formats). The request or tunnel
// is cut before the token's last byte is forwarded.
type Tripped struct {
	Hit   canary.Hit
	Where string // "host name", "URL", "header X-Foo", "body", "tunnel", "TLS server name"
	// Token says what Hit.Token is when it is not a canary; the zero
	// Token is a canary. Filled in by the gateway when it records.
	Token Token
	// Rule is the token format found when the token itself is not
	// known (Hit is then empty): "github-token", "private-key", ...
	Rule string
}

// Kind is "canary", or Token.Kind, or "format".
func (t *Tripped) Kind() string {
	switch {
	case t.Rule != "":
		return "format"
	case t.Token.Kind != "":
		return string(t.Token.Kind)
	}
	return "canary"
}

func (t *Tripped) Error() string {
	switch t.Kind() {
	case "format":
		return fmt.Sprintf("what looks like a %s in the %s; blocked (if it is not one: --allow-secret %s@HOST)", t.Rule, t.Where, t.Rule)
	case string(TokenSecret):
		return fmt.Sprintf("a credential of this host (%s, %s encoding) in the %s; blocked", t.Token.Name, t.Hit.Encoding, t.Where)
	case string(TokenPlaceholder):
		return fmt.Sprintf("the placeholder of secret %s (%s encoding) in the %s: it is swapped for the secret only in HTTPS requests to the secret's own hosts (in the URL, headers, Basic credentials and bodies up to 1 MiB sent as is); blocked", t.Token.Name, t.Hit.Encoding, t.Where)
	case string(TokenInjected):
		return fmt.Sprintf("the value of secret %s (%s encoding) in the %s, which the sandbox should not hold; blocked", t.Token.Name, t.Hit.Encoding, t.Where)
	}
	return fmt.Sprintf("a canary token (%s) in the %s: a decoy credential is leaving; blocked", t.Hit.Encoding, t.Where)
}

// TokenKind says what a watched token other than a canary is.
type TokenKind string

const (
	// TokenSecret is a credential value of this host (from a masked
	// store, or a variable cordon did not pass in): the sandbox should
	// never hold it, so seeing it leave means it leaked in some other way.
	TokenSecret TokenKind = "secret"
	// TokenPlaceholder stands for an injected secret inside the sandbox;
	// it is swapped for the value on the way to the secret's hosts, and
	// refused anywhere else.
	TokenPlaceholder TokenKind = "placeholder"
	// TokenInjected is an injected secret's real value: only the gateway
	// puts it on the wire, so from the sandbox it is refused everywhere.
	TokenInjected TokenKind = "injected"
)

// Token describes a watched token that is not a canary.
type Token struct {
	Kind TokenKind
	Name string // the secret's variable, or where the host credential lives
}

// classify fills in what t's token is, and returns t.Kind().
func (g *Gateway) classify(t *Tripped) string {
	if t.Rule == "" && t.Token.Kind == "" {
		t.Token = g.cfg.Tokens[t.Hit.Token]
	}
	return t.Kind()
}

// scanName looks for a watched token in a host name the client asked for,
// or another short text.
func (g *Gateway) scanName(where, s string) error {
	if g.cfg.Canaries == nil {
		return nil
	}
	if hit, ok := g.cfg.Canaries.ScanString(s); ok {
		return &Tripped{Hit: hit, Where: where}
	}
	// Host names are case-folded on the way (DNS ignores case, and Cordon
	// lower-cases them): a token of capitals (an AWS key id) is looked
	// for in capitals too.
	if up := strings.ToUpper(s); up != s {
		if hit, ok := g.cfg.Canaries.ScanString(up); ok {
			return &Tripped{Hit: hit, Where: where}
		}
	}
	return nil
}

// scanHead looks for a canary in a plain HTTP request's target and
// headers.
func (g *Gateway) scanHead(h *head, host string) error {
	if err := g.scanText("URL", h.target, host); err != nil {
		return err
	}
	if err := g.scanText("Host header", h.host, host); err != nil {
		return err
	}
	for k, vs := range h.header {
		for _, v := range vs {
			if err := g.scanText("header "+k, k+": "+basicView(v), host); err != nil {
				return err
			}
		}
	}
	return nil
}

// scanReader scans a body as it is read: each piece is scanned, with what
// came before, before it is handed on, so a canary is caught before its
// last byte is forwarded. Compressed bodies (declared, or gzip and zlib
// that are not) are decoded on the side and scanned too; what is found
// there can trail by a compression window, and is caught at the latest at
// the body's end, before its last piece is handed on.
type scanReader struct {
	r     io.Reader
	check func() (canary.Hit, bool)
	where string
	err   error
}

func (g *Gateway) scanBody(r io.Reader, contentEncoding, where string) *scanReader {
	s := &scanReader{where: where}
	s.r, s.check = g.cfg.Canaries.Body(r, contentEncoding)
	return s
}

func (s *scanReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	if hit, ok := s.check(); ok {
		s.err = &Tripped{Hit: hit, Where: s.where}
		return 0, s.err
	}
	return n, err
}

// stream is a fresh canary stream for one tunnel's up direction, nil when
// no canaries are watched.
func (g *Gateway) stream() *canary.Stream {
	if g.cfg.Canaries == nil {
		return nil
	}
	return g.cfg.Canaries.NewStream()
}
