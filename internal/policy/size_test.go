package policy

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
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for _, n := range []int64{1 << 20, 4 << 30, 3 << 29, 1<<40 + 1<<20, 1<<20 + 1} {
		s := FormatSize(n)
		if got, err := ParseSize(s); err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, s, got, err)
		}
	}
	if got := FormatSize(3 << 29); got != "1536M" {
		t.Errorf("FormatSize(1.5G) = %q, want 1536M", got)
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512M", "1.5G", "1e3", "9999999999T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n < 1<<20 {
			t.Errorf("ParseSize(%q) = %d without error, below the 1M floor", s, n)
		}
	})
}
