package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n2")
	if _, ok, err := ReadIdentity(dir); ok || err != nil {
		t.Fatalf("ReadIdentity of a missing directory = %v, %v; want a first start", ok, err)
	}
	d, err := OpenDataDir(dir, 7, 2)
	if err != nil {
		t.Fatal(err)
	}
	if id := d.Identity(); id.ClusterID != 7 || id.NodeID != 2 || id.Format != dirFormat {
		t.Errorf("identity = %+v", id)
	}
	if _, err := OpenDataDir(dir, 7, 2); !errors.Is(err, ErrLocked) {
		t.Errorf("second open while held = %v, want ErrLocked", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cluster, node uint64
		want          error
		msg           string
	}{
		{8, 2, ErrWrongCluster, "created for cluster 0x7, this node is configured for cluster 0x8"},
		{7, 3, ErrWrongNode, "node 2's directory, this is node 3"},
	} {
		if _, err := OpenDataDir(dir, tc.cluster, tc.node); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("OpenDataDir(cluster %d, node %d) = %v, want %v with %q", tc.cluster, tc.node, err, tc.want, tc.msg)
		}
	}
	d, err = OpenDataDir(dir, 7, 2)
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	if id, ok, err := ReadIdentity(dir); !ok || err != nil || id.NodeID != 2 {
		t.Errorf("ReadIdentity = %+v, %v, %v", id, ok, err)
	}
	_ = d.Close()
}

func TestDataDirForeign(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDataDir(dir, 7, 1); !errors.Is(err, ErrForeignDir) {
		t.Fatalf("OpenDataDir on a directory with other files = %v, want ErrForeignDir", err)
	}
	if _, err := os.Stat(filepath.Join(dir, lockFile)); !os.IsNotExist(err) {
		t.Errorf("a foreign directory got a LOCK file (%v)", err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, IdentityFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDataDir(bad, 7, 1); !errors.Is(err, ErrForeignDir) || !strings.Contains(err.Error(), "does not parse") {
		t.Errorf("garbled identity = %v", err)
	}
	future := t.TempDir()
	if err := os.WriteFile(filepath.Join(future, IdentityFile), []byte(`{"format": 99, "cluster_id": 7, "node_id": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDataDir(future, 7, 1); !errors.Is(err, ErrForeignDir) || !strings.Contains(err.Error(), "format 99") {
		t.Errorf("future format = %v", err)
	}
}
