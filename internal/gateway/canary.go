package gateway

import (
	"fmt"
	"io"
	"strings"

	"github.com/cordon-sandbox/cordon/internal/canary"
)

// Tripped is a canary token found in what a client tried to send out: a
// decoy credential was read and is leaving. The request or tunnel is cut
// before the token's last byte is forwarded.
type Tripped struct {
	Hit   canary.Hit
	Where string // "host name", "URL", "header X-Foo", "body", "tunnel", "TLS server name"
}

func (t *Tripped) Error() string {
	return fmt.Sprintf("a canary token (%s) in the %s: a decoy credential is leaving; blocked", t.Hit.Encoding, t.Where)
}

// scanName looks for a canary in a host name the client asked for.
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
func (g *Gateway) scanHead(h *head) error {
	if g.cfg.Canaries == nil {
		return nil
	}
	if err := g.scanName("URL", h.target); err != nil {
		return err
	}
	if err := g.scanName("Host header", h.host); err != nil {
		return err
	}
	for k, vs := range h.header {
		for _, v := range vs {
			if err := g.scanName("header "+k, k+": "+v); err != nil {
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
