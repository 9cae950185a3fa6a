package blast

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The report's JSON is checked against docs/blast-radius.schema.json by
// the small validator below, written for the keywords that schema uses
// (a subset of JSON Schema 2020-12): a keyword it does not know fails the
// test, so the schema cannot grow a rule that goes unchecked here.

const schemaPath = "../../docs/blast-radius.schema.json"

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	return s
}

func TestJSONMatchesSchema(t *testing.T) {
	schema := loadSchema(t)
	f := newFixture(t)
	f.p.Network.Allow = []string{"registry.npmjs.org"}
	f.p.ConnectPorts = []uint16{8080}
	f.p.Writable = []string{f.home + "/bin"}
	for _, decoys := range []bool{true, false} {
		r := f.compute(t, decoys)
		var b bytes.Buffer
		if err := WriteJSON(&b, r); err != nil {
			t.Fatal(err)
		}
		var doc any
		dec := json.NewDecoder(&b)
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		v := validator{root: schema}
		v.check(schema, doc, "$")
		for _, e := range v.errs {
			t.Error(e)
		}
	}
}

func TestSchemaValidatorFails(t *testing.T) {
	// The validator must be able to say no.
	schema := loadSchema(t)
	r := newFixture(t).compute(t, true)
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	mutations := map[string]func(m map[string]any){
		"missing score": func(m map[string]any) { delete(m, "score") },
		"unknown field": func(m map[string]any) { m["extra"] = true },
		"bad ring":      func(m map[string]any) { m["assets"].([]any)[0].(map[string]any)["ring"] = "moon" },
		"level above 1": func(m map[string]any) {
			m["assets"].([]any)[0].(map[string]any)["policy"].(map[string]any)["level"] = json.Number("2")
		},
		"version 2":       func(m map[string]any) { m["version"] = json.Number("2") },
		"date not a date": func(m map[string]any) { m["generated"] = "yesterday" },
		"uid a string":    func(m map[string]any) { m["host"].(map[string]any)["uid"] = "0" },
	}
	for name, mutate := range mutations {
		var doc map[string]any
		dec := json.NewDecoder(bytes.NewReader(b.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		mutate(doc)
		v := validator{root: schema}
		v.check(schema, doc, "$")
		if len(v.errs) == 0 {
			t.Errorf("%s: the validator accepts it", name)
		}
	}
}

func TestSchemaKnowsEveryKind(t *testing.T) {
	schema := loadSchema(t)
	kinds := schema["$defs"].(map[string]any)["asset"].(map[string]any)["properties"].(map[string]any)["kind"].(map[string]any)["enum"].([]any)
	for _, p := range homePlaces {
		if !slices.Contains(kinds, any(p.kind)) {
			t.Errorf("kind %q of %s is not in the schema's enum", p.kind, p.path)
		}
		if kindNames[p.kind] == "" {
			t.Errorf("kind %q of %s has no name", p.kind, p.path)
		}
	}
	// The report's fields and the schema's properties are the same.
	props := schema["properties"].(map[string]any)
	rt := reflect.TypeOf(Report{})
	for i := 0; i < rt.NumField(); i++ {
		tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if _, ok := props[tag]; !ok {
			t.Errorf("Report.%s (%q) is not in the schema", rt.Field(i).Name, tag)
		}
	}
	if len(props) != rt.NumField() {
		t.Errorf("the schema has %d properties, Report %d fields", len(props), rt.NumField())
	}
}

type validator struct {
	root map[string]any
	errs []string
}

func (v *validator) fail(at, format string, args ...any) {
	v.errs = append(v.errs, at+": "+fmt.Sprintf(format, args...))
}

// known are the keywords check understands; annotations are ignored.
var known = map[string]bool{
	"$schema": true, "$id": true, "title": true, "description": true, "$defs": true,
	"type": true, "required": true, "additionalProperties": true, "properties": true,
	"items": true, "$ref": true, "enum": true, "const": true, "minimum": true, "maximum": true, "format": true,
}

func (v *validator) check(s map[string]any, doc any, at string) {
	for k := range s {
		if !known[k] {
			v.fail(at, "the schema uses keyword %q, which this validator does not check", k)
		}
	}
	if ref, ok := s["$ref"].(string); ok {
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		def, found := v.root["$defs"].(map[string]any)[name].(map[string]any)
		if !ok || !found {
			v.fail(at, "unresolvable $ref %q", ref)
			return
		}
		v.check(def, doc, at)
	}
	if typ, ok := s["type"].(string); ok && !hasType(doc, typ) {
		v.fail(at, "%v is not of type %s", doc, typ)
		return
	}
	if c, ok := s["const"]; ok && fmt.Sprint(c) != fmt.Sprint(doc) {
		v.fail(at, "%v is not %v", doc, c)
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(doc) }) {
		v.fail(at, "%v is not one of %v", doc, enum)
	}
	if n, ok := doc.(json.Number); ok {
		x, _ := n.Float64()
		if min, ok := s["minimum"].(float64); ok && x < min {
			v.fail(at, "%v is below %v", x, min)
		}
		if max, ok := s["maximum"].(float64); ok && x > max {
			v.fail(at, "%v is above %v", x, max)
		}
	}
	if s["format"] == "date-time" {
		if str, _ := doc.(string); !validTime(str) {
			v.fail(at, "%q is not an RFC 3339 date-time", str)
		}
	}
	if obj, ok := doc.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := obj[r]; !ok {
				v.fail(at, "missing %q", r)
			}
		}
		for k, val := range obj {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if s["additionalProperties"] == false {
					v.fail(at, "unknown property %q", k)
				}
				continue
			}
			v.check(ps, val, at+"."+k)
		}
	}
	if arr, ok := doc.([]any); ok {
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range arr {
				v.check(items, e, fmt.Sprintf("%s[%d]", at, i))
			}
		}
	}
}

func hasType(doc any, typ string) bool {
	switch typ {
	case "object":
		_, ok := doc.(map[string]any)
		return ok
	case "array":
		_, ok := doc.([]any)
		return ok
	case "string":
		_, ok := doc.(string)
		return ok
	case "boolean":
		_, ok := doc.(bool)
		return ok
	case "number":
		_, ok := doc.(json.Number)
		return ok
	case "integer":
		n, ok := doc.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	}
	return false
}

func asStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func validTime(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}
