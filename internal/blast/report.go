package blast

import (
	"math"
	"time"
)

// Version is the version of the report's JSON form
// (docs/blast-radius.schema.json). It changes when a field changes meaning
// or goes away; new fields may come without it.
const Version = 1

// Report is what Compute finds: the assets of this host, where each is, how
// far a process gets to it without a sandbox and inside one with the policy,
// and the scores.
type Report struct {
	Version   int        `json:"version"`
	Generated time.Time  `json:"generated"`
	Host      HostInfo   `json:"host"`
	Policy    PolicyInfo `json:"policy"`
	Score     Score      `json:"score"`
	Parts     []Part     `json:"parts"`
	Assets    []Asset    `json:"assets"`
	// Notes say what was not measured or was cut short.
	Notes []string `json:"notes"`
}

// HostInfo names the machine and the user the report is about.
type HostInfo struct {
	Name string `json:"name"`
	User string `json:"user"`
	UID  int    `json:"uid"`
	OS   string `json:"os"`
	Home string `json:"home"`
}

// PolicyInfo is the part of the policy the report was computed from that a
// reader needs to make sense of it.
type PolicyInfo struct {
	Profile       string   `json:"profile"` // "" for the built-in defaults
	Workspace     string   `json:"workspace"`
	Writable      []string `json:"writable"`
	Allow         []string `json:"allow"`
	Deny          []string `json:"deny"`
	Upstream      string   `json:"upstream"`
	LoopbackPorts []int    `json:"loopback_ports"`
	Decoys        bool     `json:"decoys"`
	Limits        Limits   `json:"limits"`
}

// Limits are the policy's resource ceilings; 0 is none.
type Limits struct {
	MemoryBytes    int64   `json:"memory_bytes"`
	Pids           int64   `json:"pids"`
	CPUs           float64 `json:"cpus"`
	TimeoutSeconds float64 `json:"timeout_seconds"`
}

// Score is the two totals, each from 0 (nothing in reach) to 100
// (everything this host has in reach), and how they are computed.
type Score struct {
	NoSandbox float64 `json:"no_sandbox"`
	Policy    float64 `json:"policy"`
	Method    string  `json:"method"`
}

// Part is one of the six groups of assets and its share of the score.
type Part struct {
	Name   string  `json:"name"` // "credentials", "persistence", ...
	Title  string  `json:"title"`
	Weight float64 `json:"weight"` // the points the part gives when everything in it is in reach
	// NoSandbox and Policy are the points the part gives: Weight times the
	// weighted mean of its assets' reach.
	NoSandbox float64 `json:"no_sandbox"`
	Policy    float64 `json:"policy"`
	Assets    int     `json:"assets"`
	Explain   string  `json:"explain"`
}

// Ring says how far from the contained process an asset lies.
type Ring string

const (
	RingWorkspace Ring = "workspace"
	RingHome      Ring = "home"
	RingHost      Ring = "host"
	RingNetwork   Ring = "network"
)

// Rings are the rings in order, from the process outward.
var Rings = []Ring{RingWorkspace, RingHome, RingHost, RingNetwork}

// Asset is one thing a process could read, write, reach or use.
type Asset struct {
	ID     int     `json:"id"`
	Part   string  `json:"part"`
	Kind   string  `json:"kind"` // "credential-store", "workspace-secret", "env-var", "shell-rc", ...
	Name   string  `json:"name"`
	Path   string  `json:"path,omitempty"`
	Ring   Ring    `json:"ring"`
	Weight float64 `json:"weight"` // its weight within its part
	// NoSandbox is what a process of this user gets to without a
	// sandbox; Policy what a process inside a sandbox with the policy
	// gets to.
	NoSandbox Reach  `json:"no_sandbox"`
	Policy    Reach  `json:"policy"`
	Note      string `json:"note,omitempty"`
}

// Reach is how far a process gets to an asset: Level 0 is not at all, 1 is
// fully, in between is part of it (only the destinations a policy names,
// of all the internet). State is the word for it ("readable", "masked",
// "decoy", "writable", "read-only", ...), Detail the reason.
type Reach struct {
	Level  float64 `json:"level"`
	State  string  `json:"state"`
	Detail string  `json:"detail,omitempty"`
}

// InReach reports whether a process gets to the asset at all.
func (r Reach) InReach() bool { return r.Level > 0 }

// round1 rounds to one decimal, as the report shows points.
func round1(x float64) float64 { return math.Round(x*10) / 10 }
