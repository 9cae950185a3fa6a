package gateway

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Injection is a secret the sandbox may use but never see. Inside, its
// variable holds Placeholder; on HTTPS requests to Hosts (inspected, always)
// the gateway swaps Value in for it, in the URL, in header values (Basic
// credentials decoded and encoded again) and in bodies it holds whole (up
// to 1 MiB, not compressed). The placeholder anywhere else, and the value
// anywhere at all, are refused: they are watched tokens (Config.Tokens)
// like the canaries.
type Injection struct {
	Name        string // the variable, for messages
	Placeholder string
	Value       string // held only in this process
	Hosts       []Rule
}

func (in *Injection) matches(d Dest, port uint16) bool {
	for _, h := range in.Hosts {
		if d.IsAddr() && h.MatchAddr(d.Addr, port) || !d.IsAddr() && h.MatchName(d.Name, port) {
			return true
		}
	}
	return false
}

// injectionsFor returns the secrets swapped in on requests to d.
func (g *Gateway) injectionsFor(d Dest, port uint16) []*Injection {
	var out []*Injection
	for i := range g.cfg.Inject {
		if in := &g.cfg.Inject[i]; in.matches(d, port) {
			out = append(out, in)
		}
	}
	return out
}

// strip removes the placeholders of the secrets meant for this
// destination from what is scanned: they are expected here.
func strip(s string, allowed []*Injection) string {
	for _, in := range allowed {
		s = strings.ReplaceAll(s, in.Placeholder, "")
	}
	return s
}

// scanText looks for watched tokens and token formats in a piece of a
// request's head bound for host.
func (g *Gateway) scanText(where, s, host string) error {
	if err := g.scanName(where, s); err != nil {
		return err
	}
	return g.scanFormats(where, []byte(s), host)
}

// scanFormats looks for token formats in b.
func (g *Gateway) scanFormats(where string, b []byte, host string) error {
	if g.cfg.Formats == nil {
		return nil
	}
	if rule, ok := g.cfg.Formats(b, host); ok {
		return &Tripped{Where: where, Rule: rule}
	}
	return nil
}

// basicView shows Basic credentials decoded, as "Basic user:password", so
// that a placeholder in them is seen (and stripped) as itself.
func basicView(v string) string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return v
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return v
	}
	return scheme + " " + string(b)
}

// injectBasic swaps the value in inside Basic credentials.
func injectBasic(v string, allowed []*Injection) string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return v
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return v
	}
	s := string(b)
	for _, in := range allowed {
		s = strings.ReplaceAll(s, in.Placeholder, in.Value)
	}
	if s == string(b) {
		return v
	}
	return scheme + " " + base64.StdEncoding.EncodeToString([]byte(s))
}

// prepare scans an inspected request as the sandbox sent it and swaps in
// the secrets meant for host. An error refuses the request. A body too
// large to hold is scanned as it streams: the reader returned (nil if
// none) holds what it found.
func (g *Gateway) prepare(req *http.Request, host string, allowed []*Injection) (*scanReader, error) {
	if err := g.scanText("URL", strip(req.URL.RequestURI(), allowed), host); err != nil {
		return nil, err
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			if err := g.scanText("header "+k, k+": "+strip(basicView(v), allowed), host); err != nil {
				return nil, err
			}
		}
	}
	streamed, err := g.prepareBody(req, host, allowed)
	if err != nil {
		return nil, err
	}
	for _, in := range allowed {
		req.URL.RawQuery = strings.ReplaceAll(req.URL.RawQuery, in.Placeholder, url.QueryEscape(in.Value))
		if strings.Contains(req.URL.Path, in.Placeholder) {
			req.URL.Path = strings.ReplaceAll(req.URL.Path, in.Placeholder, in.Value)
			req.URL.RawPath = ""
		}
	}
	for k, vs := range req.Header {
		for i, v := range vs {
			v = injectBasic(v, allowed)
			for _, in := range allowed {
				v = strings.ReplaceAll(v, in.Placeholder, in.Value)
			}
			vs[i] = v
		}
		req.Header[k] = vs
	}
	return streamed, nil
}

// prepareBody holds a body of up to maxHeldBody whole: it is scanned
// (decoded too, if compressed) before anything is sent, and, if sent as
// is, gets the secrets swapped in. A larger body streams, scanned as it
// goes, and is not injected into.
func (g *Gateway) prepareBody(req *http.Request, host string, allowed []*Injection) (*scanReader, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	held, err := io.ReadAll(io.LimitReader(req.Body, maxHeldBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request body: %w", err)
	}
	ce := req.Header.Get("Content-Encoding")
	if len(held) > maxHeldBody {
		var body io.Reader = io.MultiReader(bytes.NewReader(held), req.Body)
		var sr *scanReader
		if g.cfg.Canaries != nil {
			sr = g.scanBody(body, ce, "body (over 1 MiB: streamed, not injected)")
			body = sr
		}
		req.Body = struct {
			io.Reader
			io.Closer
		}{body, req.Body}
		return sr, nil
	}
	req.Body.Close()
	view := held
	for _, in := range allowed {
		view = bytes.ReplaceAll(view, []byte(in.Placeholder), nil)
	}
	if g.cfg.Canaries != nil {
		if _, err := io.Copy(io.Discard, g.scanBody(bytes.NewReader(view), ce, "body")); err != nil {
			return nil, err
		}
	}
	if err := g.scanFormats("body", view, host); err != nil {
		return nil, err
	}
	if identity(ce) {
		for _, in := range allowed {
			held = bytes.ReplaceAll(held, []byte(in.Placeholder), []byte(in.Value))
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(held))
	req.ContentLength = int64(len(held))
	if req.Header.Get("Content-Length") != "" {
		req.Header.Set("Content-Length", strconv.Itoa(len(held)))
	}
	return nil, nil
}

func identity(ce string) bool {
	ce = strings.TrimSpace(ce)
	return ce == "" || strings.EqualFold(ce, "identity")
}
