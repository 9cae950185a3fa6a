package policyfile

import (
	"strings"
	"testing"
)

// Every built-in profile parses, says what it is for, and merges, alone
// and with what it extends.
func TestBuiltinProfiles(t *testing.T) {
	names := builtinNames()
	for _, want := range []string{"default", "offline"} {
		if !isBuiltin(want) {
			t.Errorf("no built-in profile %q (have %v)", want, names)
		}
	}
	infos, err := Profiles(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(names) {
		t.Errorf("Profiles lists %d, want %d", len(infos), len(names))
	}
	for _, info := range infos {
		t.Run(info.Name, func(t *testing.T) {
			if info.Description == "" {
				t.Errorf("profile %s has no description", info.Name)
			}
			layers, err := LoadProfile(info.Name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if top := layers[len(layers)-1].Source; top != "profile "+info.Name {
				t.Errorf("top layer %q", top)
			}
			e, err := Merge(testHost, layers...)
			if err != nil {
				t.Fatalf("Merge(%s): %v", info.Name, err)
			}
			for _, v := range e.Values {
				if v.From != "built-in" && !strings.HasPrefix(v.From, "profile ") {
					t.Errorf("value %+v from neither the defaults nor a profile", v)
				}
			}
		})
	}
}

func TestBuiltinOffline(t *testing.T) {
	layers, err := LoadProfile("offline", nil)
	if err != nil {
		t.Fatal(err)
	}
	user := layer(t, "user U", "[network]\nallow = [\"a.example\"]\n")
	e, err := Merge(testHost, append([]Layer{user}, layers...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Offline || len(e.Policy.Network.Allow) != 0 {
		t.Errorf("--profile offline lets out %v", e.Policy.Network.Allow)
	}
}

func TestLoadProfileUser(t *testing.T) {
	user := mustParse(t, "policy.toml", `
[profile.base]
description = "base"
extends = "offline"
[profile.base.limits]
pids = 100
[profile.top]
description = "top"
extends = "base"
[profile.top.limits]
pids = 200
`)
	layers, err := LoadProfile("top", user)
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, l := range layers {
		sources = append(sources, l.Source)
	}
	if got := strings.Join(sources, " < "); got != "profile offline < profile base < profile top" {
		t.Errorf("layers = %s", got)
	}
	e, err := Merge(testHost, layers...)
	if err != nil {
		t.Fatal(err)
	}
	if e.Policy.Limits.Pids != 200 || !e.Offline {
		t.Errorf("pids %d, offline %v: want top's 200 over base's, offline from what base extends", e.Policy.Limits.Pids, e.Offline)
	}
	infos, _ := Profiles(user)
	if last := infos[len(infos)-1]; last.Name != "top" || last.Source != "policy.toml" {
		t.Errorf("last profile listed = %+v", last)
	}
}

func TestLoadProfileErrors(t *testing.T) {
	user := &File{Name: "policy.toml", Profiles: map[string]*File{
		"a":    {Extends: "b"},
		"b":    {Extends: "a"},
		"lost": {Extends: "nowhere"},
	}}
	tests := []struct{ name, want string }{
		{"a", "profile a: a extends b extends a: a cycle"},
		{"lost", `profile lost: lost: no profile "nowhere"`},
		{"nosuch", `unknown profile "nosuch"; built in: ` + strings.Join(builtinNames(), ", ") + "; in policy.toml: a, b, lost"},
	}
	for _, tt := range tests {
		_, err := LoadProfile(tt.name, user)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("LoadProfile(%s) = %v, want %q", tt.name, err, tt.want)
		}
	}
}
