package policyfile

import (
	"fmt"
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Why two passes: go-toml's decoder (toml.Unmarshal into a map) checks
// the whole of TOML, duplicate keys and redefined tables included, and
// decodes every value exactly, but says where only for its own errors.
// The unstable parser gives every key's and value's byte range, but leaves
// those checks, and the decoding of numbers and dates, to its caller.
// So Parse lets the decoder check and decode, and walks the parser's AST
// only to learn where each key path is: the two agree on the paths, and
// neither job is done twice.

// pos is a place in a file.
type pos struct{ line, col int }

// positions are where the keys and values of one file are, by key path
// ("network.allow", "network.allow[3]", "profile.mywork.network").
type positions struct {
	key, val map[string]pos
	// paths are the paths of every key written, by place: a key set
	// twice has one place in key, two here.
	paths map[pos]string
}

func findPositions(data []byte) positions {
	ps := positions{key: map[string]pos{}, val: map[string]pos{}, paths: map[pos]string{}}
	var p unstable.Parser
	p.Reset(data)
	prefix := ""
	arrays := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			prefix = ps.keys(&p, "", e.Key())
			if e.Kind == unstable.ArrayTable {
				i := arrays[prefix]
				arrays[prefix]++
				prefix = index(prefix, i)
			}
		case unstable.KeyValue:
			ps.keyValue(&p, prefix, e)
		}
	}
	// A syntax error stops the walk: the decoder has reported it already.
	return ps
}

// keys records the place of each part of a dotted key and returns the
// key's whole path.
func (ps positions) keys(p *unstable.Parser, path string, it unstable.Iterator) string {
	for it.Next() {
		k := it.Node()
		path = child(path, string(k.Data))
		at := at(p, k.Raw)
		if _, ok := ps.key[path]; !ok {
			ps.key[path] = at
		}
		ps.paths[at] = path
	}
	return path
}

func (ps positions) keyValue(p *unstable.Parser, prefix string, kv *unstable.Node) {
	path := ps.keys(p, prefix, kv.Key())
	ps.value(p, path, kv.Value())
}

func (ps positions) value(p *unstable.Parser, path string, v *unstable.Node) {
	// Arrays carry no range of their own: their place is their key's.
	if v.Raw.Length > 0 {
		ps.val[path] = at(p, v.Raw)
	}
	switch v.Kind {
	case unstable.Array:
		i := 0
		for it := v.Children(); it.Next(); {
			if n := it.Node(); n.Kind != unstable.Comment {
				ps.value(p, index(path, i), n)
				i++
			}
		}
	case unstable.InlineTable:
		for it := v.Children(); it.Next(); {
			if n := it.Node(); n.Kind == unstable.KeyValue {
				ps.keyValue(p, path, n)
			}
		}
	}
}

func at(p *unstable.Parser, r unstable.Range) pos {
	s := p.Shape(r).Start
	return pos{s.Line, s.Column}
}

// child is the path of key k in the table at path. A key that is not bare
// is quoted, so a path names one key whatever the key holds.
func child(path, k string) string {
	if !bareKey(k) {
		k = strconv.Quote(k)
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func bareKey(k string) bool {
	for _, c := range k {
		if !(c == '_' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return k != ""
}

// of returns the place of path's value, or of its key, or of the nearest
// table around it that has one.
func (ps positions) of(path string, atKey bool) pos {
	for p := path; p != ""; p = parent(p) {
		if !atKey {
			if v, ok := ps.val[p]; ok {
				return v
			}
		}
		if k, ok := ps.key[p]; ok {
			return k
		}
		atKey = false
	}
	return pos{1, 1}
}

// parent strips the last key or index of a path.
func parent(path string) string {
	if path == "" {
		return ""
	}
	if path[len(path)-1] == ']' {
		for i := len(path) - 1; i >= 0; i-- {
			if path[i] == '[' {
				return path[:i]
			}
		}
		return ""
	}
	inQuote := false
	last := -1
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == '.' && !inQuote:
			last = i
		}
	}
	if last < 0 {
		return ""
	}
	return path[:last]
}
