package main

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512M", 512 << 20, true},
		{"4G", 4 << 30, true},
		{"1.5G", 3 << 29, true},
		{"2gib", 2 << 30, true},
		{"1048576", 1 << 20, true},
		{"1T", 1 << 40, true},
		{"lots", 0, false},
		{"-1G", 0, false},
		{"0", 0, false},
		{"10K", 0, false}, // below 1M
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512M", "1.5G", "1e3", "9999999999T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err == nil && n < 1<<20 {
			t.Errorf("parseSize(%q) = %d without error, below the 1M floor", s, n)
		}
	})
}
