package client

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// endpoints are the API's, as docs/api.md's table and internal/server
// have them.
var endpoints = []string{
	"GET /v1/health",
	"POST /v1/sessions",
	"GET /v1/sessions",
	"GET /v1/sessions/{id}",
	"DELETE /v1/sessions/{id}",
	"POST /v1/sessions/{id}/timeout",
	"POST /v1/sessions/{id}/exec",
	"POST /v1/sessions/{id}/execs/{exec}/stdin",
	"POST /v1/sessions/{id}/execs/{exec}/resize",
	"POST /v1/sessions/{id}/execs/{exec}/signal",
	"PUT /v1/sessions/{id}/files",
	"GET /v1/sessions/{id}/files",
	"GET /v1/sessions/{id}/files/stat",
	"GET /v1/sessions/{id}/files/list",
	"PUT /v1/sessions/{id}/archive",
	"GET /v1/sessions/{id}/archive",
	"GET /v1/sessions/{id}/events",
	"GET /metrics",
}

// openAPI is docs/openapi.yaml, as far as the test reads it.
type openAPI struct {
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas map[string]schema `yaml:"schemas"`
	} `yaml:"components"`
}

type schema struct {
	Type            any               `yaml:"type"`
	Ref             string            `yaml:"$ref"`
	Format          string            `yaml:"format"`
	ContentEncoding string            `yaml:"contentEncoding"`
	Required        []string          `yaml:"required"`
	Properties      map[string]schema `yaml:"properties"`
	Items           *schema           `yaml:"items"`
	OneOf           []schema          `yaml:"oneOf"`
}

func readOpenAPI(t *testing.T) openAPI {
	t.Helper()
	b, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPI
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	return doc
}

// TestOpenAPIPaths: every endpoint is in docs/openapi.yaml and in
// docs/api.md's table, and the OpenAPI file has no other.
func TestOpenAPIPaths(t *testing.T) {
	doc := readOpenAPI(t)
	md, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, e := range endpoints {
		want[e] = true
		method, path, _ := strings.Cut(e, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("docs/openapi.yaml lacks %s", e)
		}
		if !strings.Contains(string(md), "`"+e) {
			t.Errorf("docs/api.md's table lacks %s", e)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				if e := strings.ToUpper(method) + " " + path; !want[e] {
					t.Errorf("docs/openapi.yaml has %s, which the API has not", e)
				}
			}
		}
	}
}

// TestOpenAPISchemas: each type of api.go has a schema of its name in
// docs/openapi.yaml, each struct's JSON fields are the schema's
// properties, of the same types, the fields without omitempty are the
// schema's required ones, and the reverse.
func TestOpenAPISchemas(t *testing.T) {
	doc := readOpenAPI(t)
	f, err := parser.ParseFile(token.NewFileSet(), "api.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, sp := range gd.Specs {
			ts := sp.(*ast.TypeSpec)
			types = append(types, ts.Name.Name)
			s, ok := doc.Components.Schemas[ts.Name.Name]
			if !ok {
				t.Errorf("docs/openapi.yaml has no schema %s", ts.Name.Name)
				continue
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue // Duration, Event: described in prose
			}
			checkStruct(t, ts.Name.Name, st, s)
		}
	}
	if len(types) < 10 {
		t.Fatalf("found only %d types in api.go: %v", len(types), types)
	}
	for name := range doc.Components.Schemas {
		if !slices.Contains(types, name) {
			t.Errorf("docs/openapi.yaml has a schema %s, which api.go has not", name)
		}
	}
}

func checkStruct(t *testing.T, name string, st *ast.StructType, s schema) {
	t.Helper()
	var fields, required []string
	for _, fl := range st.Fields.List {
		if fl.Tag == nil {
			t.Errorf("%s: a field without a json tag", name)
			continue
		}
		tag, _ := strconv.Unquote(fl.Tag.Value)
		jsonTag := reflect.StructTag(tag).Get("json")
		field, opts, _ := strings.Cut(jsonTag, ",")
		if field == "" || field == "-" {
			t.Errorf("%s: a field without a json name", name)
			continue
		}
		fields = append(fields, field)
		if !strings.Contains(opts, "omitempty") {
			required = append(required, field)
		}
		p, ok := s.Properties[field]
		if !ok {
			continue // said below, with the whole list
		}
		checkType(t, name+"."+field, fl.Type, p)
	}
	var props []string
	for p := range s.Properties {
		props = append(props, p)
	}
	sort.Strings(fields)
	sort.Strings(props)
	sort.Strings(required)
	req := append([]string(nil), s.Required...)
	sort.Strings(req)
	if !slices.Equal(fields, props) {
		t.Errorf("schema %s has properties %v; api.go's %s has %v", name, props, name, fields)
	}
	if !slices.Equal(required, req) {
		t.Errorf("schema %s requires %v; api.go's %s has these without omitempty: %v", name, req, name, required)
	}
}

// checkType compares a Go field type with its schema.
func checkType(t *testing.T, where string, e ast.Expr, s schema) {
	t.Helper()
	if star, ok := e.(*ast.StarExpr); ok {
		e = star.X
	}
	want, ref := "", ""
	switch x := e.(type) {
	case *ast.Ident:
		switch x.Name {
		case "string":
			want = "string"
		case "bool":
			want = "boolean"
		case "int", "int64", "uint16", "uint32":
			want = "integer"
		case "float64":
			want = "number"
		default:
			ref = "#/components/schemas/" + x.Name
		}
	case *ast.SelectorExpr:
		if x.Sel.Name != "Time" {
			t.Errorf("%s: a Go type the test does not know", where)
			return
		}
		if s.Type != "string" || s.Format != "date-time" {
			t.Errorf("%s: a time, but the schema is %v %q, not a date-time string", where, s.Type, s.Format)
		}
		return
	case *ast.ArrayType:
		if id, ok := x.Elt.(*ast.Ident); ok && id.Name == "byte" {
			if s.Type != "string" || s.ContentEncoding != "base64" {
				t.Errorf("%s: bytes, but the schema is %v (contentEncoding %q), not a base64 string", where, s.Type, s.ContentEncoding)
			}
			return
		}
		if s.Type != "array" || s.Items == nil {
			t.Errorf("%s: a slice, but the schema is %v", where, s.Type)
			return
		}
		checkType(t, where+"[]", x.Elt, *s.Items)
		return
	case *ast.MapType:
		want = "object"
	default:
		t.Errorf("%s: a Go type the test does not know", where)
		return
	}
	if ref != "" {
		if s.Ref != ref {
			t.Errorf("%s: schema %q, want $ref %s", where, s.Ref, ref)
		}
		return
	}
	if s.Type != want {
		t.Errorf("%s: schema type %v, want %s", where, s.Type, want)
	}
}
