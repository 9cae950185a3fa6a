package cgroup

import (
	"maps"
	"reflect"
	"strings"
	"testing"
)

// Samples of /proc/self/mountinfo and /proc/self/cgroup.
const (
	// A hybrid host as root: memory, pids and cpu on v1, an empty v2 tree
	// at /sys/fs/cgroup/unified (the machine these tests were written on).
	hybridMountinfo = `22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	hybridCgroup = `9:name=systemd:/
8:pids:/
4:memory:/process_api/912812c434ead11b00912e93639519fe
1:cpu:/
0::/
`
	// A systemd host on v2 only; the user runs in a terminal's scope.
	v2Mountinfo = `24 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
26 24 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
35 26 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	v2Cgroup = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope\n"
	// An older Docker container on v1: the hierarchies are mounted at the
	// container's cgroup, cpu together with cpuacct.
	v1Mountinfo = `600 550 0:52 / / rw,relatime master:300 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
610 600 0:55 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755
611 610 0:28 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime master:11 - cgroup cgroup rw,cpu,cpuacct
612 610 0:31 /docker/abc /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:14 - cgroup cgroup rw,memory
613 610 0:35 /docker/abc /sys/fs/cgroup/pids ro,nosuid,nodev,noexec,relatime master:18 - cgroup cgroup rw,pids
`
	v1Cgroup = `12:pids:/docker/abc
4:memory:/docker/abc
3:cpu,cpuacct:/docker/abc
1:name=systemd:/docker/abc
`
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []mountEntry
		wantErr bool
	}{
		{
			name: "hybrid cgroup lines",
			in:   "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
			want: []mountEntry{
				{Root: "/", Point: "/sys/fs/cgroup/cpu", FSType: "cgroup", SuperOpts: []string{"rw", "cpu"}},
				{Root: "/", Point: "/sys/fs/cgroup/unified", FSType: "cgroup2", SuperOpts: []string{"rw"}},
			},
		},
		{
			name: "optional fields",
			in:   "35 26 0:30 / /sys/fs/cgroup rw,nosuid shared:9 master:2 - cgroup2 cgroup2 rw,nsdelegate\n",
			want: []mountEntry{{Root: "/", Point: "/sys/fs/cgroup", FSType: "cgroup2", SuperOpts: []string{"rw", "nsdelegate"}}},
		},
		{
			name: "escaped space and backslash",
			in:   `1 0 0:1 /a\040b /mnt/x\040y\134z rw - cgroup2 none rw` + "\n",
			want: []mountEntry{{Root: "/a b", Point: `/mnt/x y\z`, FSType: "cgroup2", SuperOpts: []string{"rw"}}},
		},
		{
			name: "blank lines skipped",
			in:   "\n1 0 0:1 / /c rw - cgroup2 none rw\n\n",
			want: []mountEntry{{Root: "/", Point: "/c", FSType: "cgroup2", SuperOpts: []string{"rw"}}},
		},
		{name: "no separator", in: "1 0 0:1 / /c rw cgroup2 none rw\n", wantErr: true},
		{name: "separator too late", in: "1 0 0:1 / /c rw - cgroup2\n", wantErr: true},
		{name: "separator in a path field", in: "1 0 0:1 - /c rw\n", wantErr: true},
		{name: "empty", in: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMountinfo(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseMountinfo(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseMountinfo(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr bool
	}{
		{
			name: "hybrid",
			in:   hybridCgroup,
			want: map[string]string{
				"name=systemd": "/", "pids": "/", "memory": "/process_api/912812c434ead11b00912e93639519fe", "cpu": "/", "": "/",
			},
		},
		{
			name: "v2 only",
			in:   v2Cgroup,
			want: map[string]string{"": "/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope"},
		},
		{
			name: "v1 only, co-mounted controllers",
			in:   v1Cgroup,
			want: map[string]string{
				"pids": "/docker/abc", "memory": "/docker/abc", "cpu": "/docker/abc", "cpuacct": "/docker/abc", "name=systemd": "/docker/abc",
			},
		},
		{name: "colon in path", in: "0::/a:b\n", want: map[string]string{"": "/a:b"}},
		{name: "too few fields", in: "0:/\n", wantErr: true},
		{name: "relative path", in: "0::a\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcCgroup(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseProcCgroup(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !tt.wantErr && !maps.Equal(got, tt.want) {
				t.Errorf("parseProcCgroup(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLayoutFrom(t *testing.T) {
	tests := []struct {
		name      string
		mountinfo string
		cgroup    string
		euid      int
		v2Avail   map[string]bool
		want      layout
		wantBase  bool // whether V2BaseErr is nil
		version   int
	}{
		{
			name: "hybrid as root", mountinfo: hybridMountinfo, cgroup: hybridCgroup, euid: 0,
			want: layout{
				V2Mount: "/sys/fs/cgroup/unified", V2Base: "/sys/fs/cgroup/unified",
				V1Mounts: map[string]string{"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids", "cpu": "/sys/fs/cgroup/cpu"},
			},
			wantBase: true, version: 1,
		},
		{
			name: "v2 as root", mountinfo: v2Mountinfo, cgroup: v2Cgroup, euid: 0,
			v2Avail: map[string]bool{"memory": true, "pids": true, "cpu": true},
			want: layout{
				V2Mount: "/sys/fs/cgroup", V2Base: "/sys/fs/cgroup", V1Mounts: map[string]string{},
			},
			wantBase: true, version: 2,
		},
		{
			name: "v2 unprivileged uses its own cgroup", mountinfo: v2Mountinfo, cgroup: v2Cgroup, euid: 1000,
			v2Avail: map[string]bool{"memory": true, "pids": true},
			want: layout{
				V2Mount:  "/sys/fs/cgroup",
				V2Base:   "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope",
				V1Mounts: map[string]string{},
			},
			wantBase: true, version: 2,
		},
		{
			name: "v2 unprivileged already moved aside", mountinfo: v2Mountinfo, euid: 1000,
			cgroup: "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope/cordon-host\n",
			want: layout{
				V2Mount:  "/sys/fs/cgroup",
				V2Base:   "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope",
				V1Mounts: map[string]string{},
			},
			wantBase: true, version: 2,
		},
		{
			name: "v2 unprivileged, mount root is a prefix", euid: 1000,
			mountinfo: "1 0 0:30 /user.slice /mnt/cg rw - cgroup2 cgroup2 rw\n",
			cgroup:    "0::/user.slice/u.scope\n",
			want:      layout{V2Mount: "/mnt/cg", V2Base: "/mnt/cg/u.scope", V1Mounts: map[string]string{}},
			wantBase:  true, version: 2,
		},
		{
			name: "v2 unprivileged outside the mount", euid: 1000,
			mountinfo: "1 0 0:30 /other /mnt/cg rw - cgroup2 cgroup2 rw\n",
			cgroup:    "0::/user.slice/u.scope\n",
			want:      layout{V2Mount: "/mnt/cg", V1Mounts: map[string]string{}},
			wantBase:  false, version: 2,
		},
		{
			name: "v1 only container", mountinfo: v1Mountinfo, cgroup: v1Cgroup, euid: 0,
			want: layout{V1Mounts: map[string]string{
				"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids", "cpu": "/sys/fs/cgroup/cpu,cpuacct",
			}},
			wantBase: true, version: 1,
		},
		{
			name: "a tie goes to v2", mountinfo: hybridMountinfo, cgroup: hybridCgroup, euid: 0,
			// Not a real kernel state (a controller is bound to one
			// hierarchy), but it pins the tie-break: more controllers wins.
			v2Avail: map[string]bool{"memory": true, "pids": true, "cpu": true},
			want: layout{
				V2Mount: "/sys/fs/cgroup/unified", V2Base: "/sys/fs/cgroup/unified",
				V1Mounts: map[string]string{"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids", "cpu": "/sys/fs/cgroup/cpu"},
			},
			wantBase: true, version: 2,
		},
		{
			name: "no cgroups", mountinfo: "22 1 254:0 / / rw - ext4 /dev/vda rw\n", cgroup: "", euid: 0,
			want: layout{V1Mounts: map[string]string{}}, wantBase: true, version: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mounts, err := parseMountinfo(strings.NewReader(tt.mountinfo))
			if err != nil {
				t.Fatal(err)
			}
			member, err := parseProcCgroup(strings.NewReader(tt.cgroup))
			if err != nil {
				t.Fatal(err)
			}
			got := layoutFrom(mounts, member, tt.euid)
			if (got.V2BaseErr == nil) != tt.wantBase {
				t.Errorf("layoutFrom() V2BaseErr = %v, want nil: %v", got.V2BaseErr, tt.wantBase)
			}
			got.V2BaseErr = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("layoutFrom() = %+v, want %+v", got, tt.want)
			}
			if v := chooseVersion(got, tt.v2Avail); v != tt.version {
				t.Errorf("chooseVersion(%+v, %v) = %d, want %d", got, tt.v2Avail, v, tt.version)
			}
		})
	}
}
