package secrets

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The parsers below read what the stores' tools write, leniently: a line
// they do not understand is passed over, and only a file that cannot be
// parsed at all (JSON, YAML, XML) counts as skipped. None of them returns
// an error, so none can put a value in one.

// A kv is one setting of an INI, TOML or properties file.
type kv struct {
	key, value string
}

// lines returns the lines of b, trimmed, without blank ones and '#'
// comments.
func lines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && l[0] != '#' {
			out = append(out, l)
		}
	}
	return out
}

// parseINI reads INI as Python's configparser does (AWS, PyPI, pip, OCI):
// "key = value" or "key: value", comments on lines of their own, and
// continuation lines, indented, appended to the value before them. Keys
// are lower-cased, as configparser does; sections do not matter here.
func parseINI(b []byte) []kv {
	return parseLines(b, "=:", true)
}

// parseNpmrc reads INI as npm does: keys hold ':'
// (//registry.npmjs.org/:_authToken), so only '=' ends them, and an
// indented line is a line like any other.
func parseNpmrc(b []byte) []kv {
	return parseLines(b, "=", false)
}

func parseLines(b []byte, separators string, continuation bool) []kv {
	var out []kv
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		t := strings.TrimSpace(line)
		switch {
		case t == "" || t[0] == '#' || t[0] == ';' || t[0] == '[':
			continue
		case continuation && (line[0] == ' ' || line[0] == '\t'):
			if len(out) > 0 {
				out[len(out)-1].value += "\n" + t
			}
			continue
		}
		if i := strings.IndexAny(t, separators); i >= 0 {
			out = append(out, kv{strings.ToLower(strings.TrimSpace(t[:i])), strings.TrimSpace(t[i+1:])})
		}
	}
	return out
}

// parseTOML reads the "key = value" lines of a TOML file whose values are
// strings (Cargo's credentials): basic "..." and literal '...' strings,
// with a comment after them or not. Tables, arrays and multi-line strings
// are passed over.
func parseTOML(b []byte) []kv {
	var out []kv
	for _, l := range lines(b) {
		if l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k, v = strings.Trim(strings.TrimSpace(k), `"'`), strings.TrimSpace(v)
		if s, ok := tomlString(v); ok {
			out = append(out, kv{k, s})
		}
	}
	return out
}

func tomlString(v string) (string, bool) {
	switch {
	case strings.HasPrefix(v, `"""`), strings.HasPrefix(v, "'''"):
		return "", false
	case strings.HasPrefix(v, `"`):
		for i := 1; i < len(v); i++ {
			switch v[i] {
			case '\\':
				i++
			case '"':
				s, err := strconv.Unquote(v[:i+1])
				return s, err == nil
			}
		}
	case strings.HasPrefix(v, "'"):
		if i := strings.IndexByte(v[1:], '\''); i >= 0 {
			return v[1 : i+1], true
		}
	}
	return "", false
}

// unquote removes the quotes npm's ini parser removes.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		if u, err := strconv.Unquote(s); err == nil && s[0] == '"' {
			return u
		}
		return s[1 : len(s)-1]
	}
	return s
}

// yamlValues takes the scalar values whose path of keys want accepts, at
// any depth of YAML b (its first document). Aliases are not followed: what
// they point at is visited where it is defined.
func (r *reader) yamlValues(b []byte, p string, want func(keys []string) bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		r.skipped++
		return
	}
	var walk func(n *yaml.Node, keys []string)
	walk = func(n *yaml.Node, keys []string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, keys)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k := n.Content[i]; k.Kind == yaml.ScalarNode {
					walk(n.Content[i+1], append(keys[:len(keys):len(keys)], k.Value))
				}
			}
		case yaml.ScalarNode:
			if len(keys) > 0 && want(keys) {
				r.value(n.Value, p, keys[len(keys)-1])
			}
		}
	}
	walk(&doc, nil)
}

// netrcFile reads netrc: tokens separated by white space, the secret ones
// after "password" and "account". A "macdef" runs to the next blank line.
// Tokens may be quoted, with backslash escapes, as curl allows.
func netrcFile(r *reader, p string) {
	b, ok := r.read(p)
	if !ok {
		return
	}
	s := string(b)
	next := func() string {
		s = strings.TrimLeft(s, " \t\r\n")
		if strings.HasPrefix(s, `"`) {
			var t strings.Builder
			for i := 1; i < len(s); i++ {
				switch c := s[i]; c {
				case '\\':
					if i+1 < len(s) {
						i++
						t.WriteByte(s[i])
					}
				case '"':
					s = s[i+1:]
					return t.String()
				default:
					t.WriteByte(c)
				}
			}
			s = ""
			return t.String()
		}
		i := strings.IndexAny(s, " \t\r\n")
		if i < 0 {
			i = len(s)
		}
		t := s[:i]
		s = s[i:]
		return t
	}
	for s != "" {
		switch t := next(); t {
		case "password", "account":
			r.add(next(), p, t)
		case "macdef":
			if i := strings.Index(s, "\n\n"); i >= 0 {
				s = s[i:]
			} else {
				s = ""
			}
		}
	}
}

// mavenSettings takes the text of every <password> and <passphrase>
// element (servers' passwords, the passphrases of their private keys,
// proxies' passwords), encrypted ({...}) or not; a property reference
// (${env.PASS}) is not a secret itself.
func mavenSettings(r *reader, p string) {
	b, ok := r.read(p)
	if !ok {
		return
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var text *strings.Builder
	var name string
	for {
		tok, err := d.Token()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.skipped++
			}
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			text = nil
			if t.Name.Local == "password" || t.Name.Local == "passphrase" {
				text, name = &strings.Builder{}, t.Name.Local
			}
		case xml.CharData:
			if text != nil {
				text.Write(t)
			}
		case xml.EndElement:
			if text != nil && t.Name.Local == name {
				if v := strings.TrimSpace(text.String()); !strings.HasPrefix(v, "${") {
					r.add(v, p, name)
				}
			}
			text = nil
		}
	}
}

// gradleProperties reads Java properties and takes the values of keys that
// name a password, token, secret or key, except those that name a file, a
// path, an id or a user (signing.secretKeyRingFile, signing.keyId).
func gradleProperties(r *reader, p string) {
	b, ok := r.read(p)
	if !ok {
		return
	}
	for _, e := range parseProperties(b) {
		k := strings.ToLower(e.key)
		if !strings.Contains(k, "password") && !strings.Contains(k, "token") && !strings.Contains(k, "secret") && !strings.Contains(k, "key") {
			continue
		}
		not := false
		for _, s := range []string{"file", "path", "dir", "id", "user", "username", "url"} {
			not = not || strings.HasSuffix(k, s)
		}
		if !not {
			r.add(e.value, p, e.key)
		}
	}
}

// parseProperties reads the format of java.util.Properties: logical lines
// joined at a trailing backslash, '#' and '!' comments, a key ending at an
// unescaped '=', ':' or white space, and backslash escapes.
func parseProperties(b []byte) []kv {
	var out []kv
	phys := strings.Split(string(b), "\n")
	for i := 0; i < len(phys); i++ {
		l := strings.TrimLeft(strings.TrimRight(phys[i], "\r"), " \t\f")
		if l == "" || l[0] == '#' || l[0] == '!' {
			continue
		}
		for continued(l) && i+1 < len(phys) {
			i++
			l = l[:len(l)-1] + strings.TrimLeft(strings.TrimRight(phys[i], "\r"), " \t\f")
		}
		end := len(l)
		for j := 0; j < len(l); j++ {
			if l[j] == '\\' {
				j++
				continue
			}
			if strings.IndexByte("=: \t\f", l[j]) >= 0 {
				end = j
				break
			}
		}
		key, rest := l[:end], strings.TrimLeft(l[end:], " \t\f")
		if rest != "" && (rest[0] == '=' || rest[0] == ':') {
			rest = strings.TrimLeft(rest[1:], " \t\f")
		}
		out = append(out, kv{unescapeProperty(key), unescapeProperty(rest)})
	}
	return out
}

// continued reports whether a properties line ends in an odd number of
// backslashes.
func continued(l string) bool {
	n := 0
	for n < len(l) && l[len(l)-1-n] == '\\' {
		n++
	}
	return n%2 == 1
}

func unescapeProperty(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var t strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			t.WriteByte(c)
			continue
		}
		i++
		switch c = s[i]; c {
		case 't':
			t.WriteByte('\t')
		case 'n':
			t.WriteByte('\n')
		case 'r':
			t.WriteByte('\r')
		case 'f':
			t.WriteByte('\f')
		case 'u':
			if i+4 < len(s) {
				if n, err := strconv.ParseUint(s[i+1:i+5], 16, 16); err == nil {
					t.WriteRune(rune(n))
					i += 4
					continue
				}
			}
			t.WriteByte(c)
		default:
			t.WriteByte(c)
		}
	}
	return t.String()
}
