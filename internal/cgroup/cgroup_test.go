package cgroup

import (
	"math"
	"strings"
	"testing"
)

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name    string
		l       Limits
		wantErr bool
	}{
		{name: "none", l: Limits{}},
		{name: "all", l: Limits{MemoryBytes: 1 << 30, Pids: 100, CPUs: 1.5}},
		{name: "smallest cpu", l: Limits{CPUs: 0.01}},
		{name: "negative memory", l: Limits{MemoryBytes: -1}, wantErr: true},
		{name: "negative pids", l: Limits{Pids: -1}, wantErr: true},
		{name: "negative cpu", l: Limits{CPUs: -0.5}, wantErr: true},
		{name: "cpu below kernel minimum", l: Limits{CPUs: 0.005}, wantErr: true},
		{name: "cpu NaN", l: Limits{CPUs: math.NaN()}, wantErr: true},
		{name: "cpu infinite", l: Limits{CPUs: math.Inf(1)}, wantErr: true},
		{name: "cpu huge", l: Limits{CPUs: 1e300}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.l.validate(); (err != nil) != tt.wantErr {
				t.Errorf("%+v.validate() = %v, want error %v", tt.l, err, tt.wantErr)
			}
		})
	}
}

func TestCPUQuota(t *testing.T) {
	tests := []struct {
		cpus float64
		want int64
	}{
		{0.01, 1000},
		{0.5, 50000},
		{1.5, 150000},
		{4, 400000},
		{0.333333, 33333},
	}
	for _, tt := range tests {
		if got := (Limits{CPUs: tt.cpus}).cpuQuota(); got != tt.want {
			t.Errorf("Limits{CPUs: %g}.cpuQuota() = %d, want %d", tt.cpus, got, tt.want)
		}
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name    string
		wantErr bool
	}{
		{"cordon-123-abcd", false},
		{"a", false},
		{"a:b", false},
		{"", true},
		{".", true},
		{"..", true},
		{"a/b", true},
		{"../x", true},
		{"a\nb", true},
		{"a\x00b", true},
		{"cordon", true},
		{"cordon-host", true},
		{strings.Repeat("x", 256), true},
	}
	for _, tt := range tests {
		if err := validName(tt.name); (err != nil) != tt.wantErr {
			t.Errorf("validName(%q) = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}
