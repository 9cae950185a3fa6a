package policyfile

import (
	"testing"
)

var fuzzSeeds = []string{
	everyKey,
	"[network]\nallow = [\"a.example\", \"exa mple.com\"]\n",
	"[profile.a]\nextends = \"offline\"\n[profile.a.network]\nallow = [\"x.example\"]\n",
	"[filesystem]\nwrite = [\"~\"]\nmask = [\"/x\"]\nhome = \"hidden\"\n",
	"a = {b = 1, c = [1, 2, {d = 3}]}\n[[e]]\nf = 1\n",
	"[network.secrets]\n\"A.B\" = [\"x.example\"]\nT = []\n",
	"[limits]\ncpus = nan\npids = -1\nmemory = \"1e300T\"\ntimeout = \"-1s\"\n",
}

// FuzzParse: no input makes Parse panic, and every file it accepts merges
// without error, with each of its profiles.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		for _, role := range []Role{User, Workspace, Profile} {
			file, err := ParseAs("p.toml", []byte(data), role)
			if err != nil {
				if _, ok := err.(Errors); !ok {
					t.Fatalf("ParseAs = %T %v, want Errors", err, err)
				}
				continue
			}
			if _, err := Merge(testHost, Layer{Source: "s", File: file}); err != nil {
				t.Fatalf("ParseAs(%q) accepted, but Merge: %v", data, err)
			}
			for name := range file.Profiles {
				layers, err := LoadProfile(name, file)
				if err != nil {
					t.Fatalf("LoadProfile(%s) of an accepted file: %v", name, err)
				}
				if _, err := Merge(testHost, layers...); err != nil {
					t.Fatalf("Merge of profile %s: %v", name, err)
				}
			}
		}
	})
}

// FuzzMerge: any two accepted files merge, in either order, and what
// denies wins in the result.
func FuzzMerge(f *testing.F) {
	for i, a := range fuzzSeeds {
		f.Add(a, fuzzSeeds[(i+1)%len(fuzzSeeds)])
	}
	f.Add("[network]\ndeny = [\"a.example\"]\n[filesystem]\nmask = [\"~/m\"]\n", "[network]\nallow = [\"a.example\"]\n[filesystem]\nwrite = [\"~/m/w\"]\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		fa, err := Parse("a.toml", []byte(a))
		if err != nil {
			return
		}
		fb, err := ParseAs("b.toml", []byte(b), Workspace)
		if err != nil {
			return
		}
		for _, layers := range [][]Layer{
			{{Source: "a", File: fa}, {Source: "b", File: fb}},
			{{Source: "b", File: fb}, {Source: "a", File: fa}, FlagLayer(fa.Body)},
		} {
			e, err := Merge(testHost, layers...)
			if err != nil {
				t.Fatalf("Merge of accepted files: %v", err)
			}
			p := e.Policy
			for _, w := range p.Writable {
				for _, m := range p.Masks {
					if within(w, m.Path) {
						t.Errorf("writable %s inside mask %s", w, m.Path)
					}
				}
			}
			for _, al := range p.Network.Allow {
				ca, _ := ruleKey(al)
				for _, d := range p.Network.Deny {
					if cd, _ := ruleKey(d); ca == cd {
						t.Errorf("%s both allowed and denied", al)
					}
				}
			}
			if e.Offline && (len(p.Network.Allow) > 0 || len(p.Network.Secrets) > 0 || p.Network.Upstream != "") {
				t.Errorf("offline, yet %+v", p.Network)
			}
			for _, n := range p.PassEnv {
				for _, d := range p.DropEnv {
					if n == d {
						t.Errorf("%s both passed and dropped", n)
					}
				}
			}
		}
	})
}
