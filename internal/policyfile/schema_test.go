package policyfile

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

type jsonSchema struct {
	Ref                  string                 `json:"$ref"`
	Type                 string                 `json:"type"`
	Properties           map[string]*jsonSchema `json:"properties"`
	AdditionalProperties json.RawMessage        `json:"additionalProperties"`
	Items                *jsonSchema            `json:"items"`
	Enum                 []string               `json:"enum"`
	Examples             []any                  `json:"examples"`
	Defs                 map[string]*jsonSchema `json:"$defs"`
}

func readSchema(t *testing.T) *jsonSchema {
	t.Helper()
	b, err := os.ReadFile("../../docs/policy.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s jsonSchema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("docs/policy.schema.json: %v", err)
	}
	return &s
}

func propNames(s *jsonSchema) []string {
	var out []string
	for k := range s.Properties {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}

// The schema editors read and the parser agree: the same keys in each
// table, of the same types, with the same allowed values.
func TestSchemaAgreesWithParser(t *testing.T) {
	s := readSchema(t)
	top := sorted(append(topKeys(Profile), "profile"))
	if got := propNames(s); !slices.Equal(got, top) {
		t.Errorf("schema's top-level keys %v, parser's %v", got, top)
	}
	if got, want := propNames(s.Defs["profile"]), sorted(topKeys(Profile)); !slices.Equal(got, want) {
		t.Errorf("schema's profile keys %v, parser's %v", got, want)
	}
	for _, sec := range sections {
		if ref := s.Properties[sec].Ref; ref != "#/$defs/"+sec {
			t.Errorf("schema's %s is %q, want a $ref to $defs/%s", sec, ref, sec)
		}
		def := s.Defs[sec]
		if def == nil {
			t.Errorf("schema has no $defs/%s", sec)
			continue
		}
		if string(def.AdditionalProperties) != "false" {
			t.Errorf("schema's [%s] allows other keys; the parser does not", sec)
		}
		if got, want := propNames(def), sorted(keysOf(sec)); !slices.Equal(got, want) {
			t.Errorf("schema's [%s] keys %v, parser's %v", sec, got, want)
		}
	}
	jsonType := map[typ]string{tString: "string", tBool: "boolean", tInteger: "integer", tNumber: "number", tStrings: "array", tIntegers: "array", tHosts: "object"}
	for _, f := range fields {
		p := s.Defs[f.section].Properties[f.name]
		if p == nil {
			continue // reported above
		}
		if p.Type != jsonType[f.typ] {
			t.Errorf("%s: schema type %q, parser's %q", f.key(), p.Type, jsonType[f.typ])
		}
		switch f.typ {
		case tStrings:
			if p.Items == nil || p.Items.Type != "string" {
				t.Errorf("%s: schema items are not strings", f.key())
			}
		case tIntegers:
			if p.Items == nil || p.Items.Type != "integer" {
				t.Errorf("%s: schema items are not integers", f.key())
			}
		}
		// Each example parses.
		for _, ex := range p.Examples {
			if f.typ == tInteger || f.typ == tIntegers {
				ex = jsonInts(ex)
			}
			doc, err := toml.Marshal(map[string]any{f.section: map[string]any{f.name: ex}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse("p.toml", doc); err != nil {
				t.Errorf("%s: the schema's example %v does not parse: %v", f.key(), ex, err)
			}
		}
		// Each allowed value parses; another does not.
		for _, v := range p.Enum {
			doc := fmt.Sprintf("[%s]\n%s = %q\n", f.section, f.name, v)
			if _, err := Parse("p.toml", []byte(doc)); err != nil {
				t.Errorf("%s = %q is in the schema's enum, but: %v", f.key(), v, err)
			}
		}
		if len(p.Enum) > 0 {
			doc := fmt.Sprintf("[%s]\n%s = %q\n", f.section, f.name, strings.Join(p.Enum, ""))
			if _, err := Parse("p.toml", []byte(doc)); err == nil {
				t.Errorf("%s accepts a value outside the schema's enum %v", f.key(), p.Enum)
			}
		}
	}
}

// docs/policy.md shows every key.
func TestDocsListEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, f := range fields {
		if !strings.Contains(doc, "`"+f.key()+"`") {
			t.Errorf("docs/policy.md does not describe `%s`", f.key())
		}
	}
	for _, name := range builtinNames() {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/policy.md does not name the built-in profile `%s`", name)
		}
	}
}

// jsonInts turns JSON's numbers into the integers TOML must write.
func jsonInts(v any) any {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonInts(e)
		}
		return out
	}
	return v
}
