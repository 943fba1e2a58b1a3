package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// deployDir is the repository's deploy/ directory, seen from this
// package's directory (where go test runs).
var deployDir = filepath.Join("..", "deploy")

// k8sObject is the part of a Kubernetes manifest the test reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		// Service
		ClusterIP                string    `yaml:"clusterIP"`
		PublishNotReadyAddresses bool      `yaml:"publishNotReadyAddresses"`
		Ports                    []k8sPort `yaml:"ports"`
		// StatefulSet
		ServiceName string `yaml:"serviceName"`
		Replicas    int    `yaml:"replicas"`
		Template    struct {
			Spec struct {
				Containers []struct {
					Command        []string  `yaml:"command"`
					Args           []string  `yaml:"args"`
					Ports          []k8sPort `yaml:"ports"`
					ReadinessProbe struct {
						HTTPGet struct {
							Path string `yaml:"path"`
							Port string `yaml:"port"`
						} `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []k8sVolume `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

type k8sVolume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
	} `yaml:"secret"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	Port          int    `yaml:"port"`
	ContainerPort int    `yaml:"containerPort"`
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return p
}

// TestKubernetesManifest parses deploy/kubernetes/raftbench.yaml and checks
// the StatefulSet's container arguments with raftbench node's own flag
// parsing and validation, for every pod of the set, and that ports, probe,
// volumes and DNS names agree with them.
func TestKubernetesManifest(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "raftbench.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var svc, sts *k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("manifest: %v", err)
		}
		switch o.Kind {
		case "Service":
			svc = &o
		case "StatefulSet":
			sts = &o
		}
	}
	if svc == nil || sts == nil {
		t.Fatalf("manifest needs a Service and a StatefulSet (got %v, %v)", svc != nil, sts != nil)
	}
	if svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses || sts.Spec.ServiceName != svc.Metadata.Name {
		t.Errorf("the Service must be headless, publish unready pods, and be the StatefulSet's serviceName")
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("want one volume claim template (a persistent volume per node)")
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "node" {
		t.Fatalf("container args %v do not run raftbench node", c.Args)
	}
	var setups []*nodeSetup
	for i := range sts.Spec.Replicas {
		host := fmt.Sprintf("%s-%d", sts.Metadata.Name, i)
		s, err := parseNode(t, c.Args[1:], host)
		if err != nil {
			t.Fatalf("pod %s: raftbench node refuses the container arguments: %v", host, err)
		}
		setups = append(setups, s)
		own := s.peers[s.id]
		dns := host + "." + svc.Metadata.Name
		if !strings.HasPrefix(own.raft, dns+":") || !strings.HasPrefix(own.client, dns+":") {
			t.Errorf("pod %s is node %d, whose --peers entry %+v is not at %s", host, s.id, own, dns)
		}
		if portOf(t, own.raft) != portOf(t, s.raftListen) || portOf(t, own.client) != portOf(t, s.clientListen) {
			t.Errorf("node %d listens on %s/%s but its peers reach it at %+v", s.id, s.raftListen, s.clientListen, own)
		}
	}
	if n := len(setups[0].peers); n != sts.Spec.Replicas {
		t.Errorf("--peers names %d nodes, the StatefulSet runs %d", n, sts.Spec.Replicas)
	}
	s := setups[0]
	want := map[string]string{"raft": portOf(t, s.raftListen), "client": portOf(t, s.clientListen), "admin": portOf(t, s.adminListen)}
	for name, p := range want {
		i := slices.IndexFunc(c.Ports, func(cp k8sPort) bool { return cp.Name == name })
		j := slices.IndexFunc(svc.Spec.Ports, func(sp k8sPort) bool { return sp.Name == name })
		if i < 0 || fmt.Sprint(c.Ports[i].ContainerPort) != p || j < 0 || fmt.Sprint(svc.Spec.Ports[j].Port) != p {
			t.Errorf("port %s: the flags say %s, the container and Service ports %+v %+v", name, p, c.Ports, svc.Spec.Ports)
		}
	}
	probe := c.ReadinessProbe.HTTPGet
	if !strings.HasPrefix(probe.Path, "/status") || probe.Port != "admin" {
		t.Errorf("readiness probe %+v, want /status on the admin port", probe)
	}
	mounted := func(file string) string {
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(file, m.MountPath+"/") {
				return m.Name
			}
		}
		return ""
	}
	if v := mounted(s.dir); v != sts.Spec.VolumeClaimTemplates[0].Metadata.Name {
		t.Errorf("--dir %s is not on the persistent volume (it is on %q)", s.dir, v)
	}
	if s.dir == "/var/lib/raftbench" || path.Dir(s.dir) == "/" {
		t.Errorf("--dir %s should be a subdirectory of the volume (a fresh volume may hold lost+found)", s.dir)
	}
	tokVol := mounted(s.tokenFile)
	vi := slices.IndexFunc(sts.Spec.Template.Spec.Volumes, func(v k8sVolume) bool { return v.Name == tokVol })
	if s.tokenFile == "" || vi < 0 || sts.Spec.Template.Spec.Volumes[vi].Secret == nil {
		t.Errorf("--admin-token-file %q is not on a Secret volume", s.tokenFile)
	}
}

// unitExec returns the ExecStart command line of a systemd unit.
func unitExec(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			return v
		}
	}
	t.Fatalf("%s has no ExecStart", file)
	return ""
}

// readEnv reads a systemd EnvironmentFile.
func readEnv(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", file, line)
		}
		env[k] = v
	}
	return env
}

// systemdWords splits an ExecStart line as systemd does for this unit:
// words at spaces, ${VAR} replaced by the variable as one word, $VAR by
// the variable split at whitespace (nothing when empty).
func systemdWords(t *testing.T, line string, env map[string]string) []string {
	t.Helper()
	var words []string
	braced, bare := regexp.MustCompile(`^\$\{(\w+)\}$`), regexp.MustCompile(`^\$(\w+)$`)
	for _, w := range strings.Fields(line) {
		switch {
		case braced.MatchString(w):
			v, ok := env[braced.FindStringSubmatch(w)[1]]
			if !ok {
				t.Errorf("ExecStart uses %s, which the environment file does not set", w)
			}
			words = append(words, v)
		case bare.MatchString(w):
			v, ok := env[bare.FindStringSubmatch(w)[1]]
			if !ok {
				t.Errorf("ExecStart uses %s, which the environment file does not set", w)
			}
			words = append(words, strings.Fields(v)...)
		case strings.Contains(w, "$"):
			t.Errorf("ExecStart word %q mixes text and a variable", w)
		default:
			words = append(words, w)
		}
	}
	return words
}

// TestSystemdUnit checks the unit's ExecStart, with the example environment
// file, against raftbench node's flag parsing and validation — also with
// extra knobs in RAFTBENCH_FLAGS.
func TestSystemdUnit(t *testing.T) {
	line := unitExec(t, filepath.Join(deployDir, "systemd", "raftbench-node.service"))
	env := readEnv(t, filepath.Join(deployDir, "systemd", "node.env.example"))
	for _, extra := range []string{"", "--transport quic --election-timeout 500ms"} {
		env["RAFTBENCH_FLAGS"] = extra
		words := systemdWords(t, line, env)
		if len(words) < 2 || filepath.Base(words[0]) != "raftbench" || words[1] != "node" {
			t.Fatalf("ExecStart %v does not run raftbench node", words)
		}
		s, err := parseNode(t, words[2:], "node1")
		if err != nil {
			t.Fatalf("raftbench node refuses the unit's ExecStart %v: %v", words[2:], err)
		}
		own := s.peers[s.id]
		if portOf(t, own.client) != portOf(t, s.clientListen) || portOf(t, own.raft) != portOf(t, s.raftListen) {
			t.Errorf("node %d listens on %s/%s but its peers reach it at %+v", s.id, s.raftListen, s.clientListen, own)
		}
		if !strings.HasPrefix(s.dir, "/var/lib/raftbench/") || s.tokenFile == "" || s.adminListen == "" {
			t.Errorf("unit: --dir %q (want under the StateDirectory), token file %q, admin %q", s.dir, s.tokenFile, s.adminListen)
		}
		if extra != "" && s.knobs.Transport != "quic" {
			t.Errorf("RAFTBENCH_FLAGS did not reach the node")
		}
	}
}
