package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Data directory errors.
var (
	// ErrLocked: another process (or another node in this one) is using
	// the data directory.
	ErrLocked = errors.New("cluster: data directory is in use")
	// ErrForeignDir: the directory holds files but is not a raftbench node
	// directory (no identity file), or one of a format this build does not
	// read. Nothing in it is touched.
	ErrForeignDir = errors.New("cluster: not a raftbench node directory")
	// ErrWrongCluster: the directory belongs to a node of another cluster.
	ErrWrongCluster = errors.New("cluster: data directory belongs to another cluster")
	// ErrWrongNode: the directory belongs to another node of this cluster.
	ErrWrongNode = errors.New("cluster: data directory belongs to another node")
)

// Names inside a data directory.
const (
	// IdentityFile records whose directory this is (DirIdentity as JSON).
	IdentityFile = "raftbench-node.json"
	lockFile     = "LOCK"
	walDir       = "wal"
	snapDir      = "snap"
)

// dirFormat is the layout version IdentityFile records. A directory of a
// newer format is refused rather than guessed at.
const dirFormat = 1

// DirIdentity is who a data directory belongs to. It is written on the
// first start and checked on every later one, so a node restarted with
// another cluster's ID, or pointed at another node's directory, refuses to
// start instead of corrupting either cluster.
type DirIdentity struct {
	Format    int    `json:"format"`
	ClusterID uint64 `json:"cluster_id"`
	NodeID    uint64 `json:"node_id"`
	// Created is when the directory was first used (RFC 3339, UTC); for
	// people reading the file.
	Created string `json:"created,omitempty"`
}

// DataDir is a node's data directory, held for exclusive use:
//
//	raftbench-node.json  its identity (DirIdentity)
//	LOCK                 locked while a node uses the directory
//	wal/                 the Pebble WAL
//	snap/                snapshot images and the member address book
//
// Restarting a node on the same DataDir path resumes it where it stopped.
type DataDir struct {
	path string
	id   DirIdentity
	lock io.Closer
}

// ReadIdentity returns the identity recorded in the data directory at path.
// ok is false (with a nil error) when the directory does not exist or is
// empty: a node's first start. A directory with other files but no
// identity is ErrForeignDir.
func ReadIdentity(path string) (id DirIdentity, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(path, IdentityFile))
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		empty, err := isEmptyDir(path)
		if err != nil {
			return DirIdentity{}, false, fmt.Errorf("cluster: data directory %s: %w", path, err)
		}
		if !empty {
			return DirIdentity{}, false, fmt.Errorf("%w: %s holds files but no %s; give each node an empty directory of its own", ErrForeignDir, path, IdentityFile)
		}
		return DirIdentity{}, false, nil
	default:
		return DirIdentity{}, false, fmt.Errorf("cluster: data directory %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return DirIdentity{}, false, fmt.Errorf("%w: %s: %s does not parse: %v", ErrForeignDir, path, IdentityFile, err)
	}
	if id.Format != dirFormat {
		return DirIdentity{}, false, fmt.Errorf("%w: %s has layout format %d, this build reads format %d", ErrForeignDir, path, id.Format, dirFormat)
	}
	if id.NodeID == 0 {
		return DirIdentity{}, false, fmt.Errorf("%w: %s: %s names node 0", ErrForeignDir, path, IdentityFile)
	}
	return id, true, nil
}

// isEmptyDir reports whether path is missing or holds nothing but a lock
// file (left by a first start that stopped before writing its identity).
func isEmptyDir(path string) (bool, error) {
	ents, err := os.ReadDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if e.Name() != lockFile {
			return false, nil
		}
	}
	return true, nil
}

// OpenDataDir opens node nodeID's data directory at path for exclusive use,
// creating it (and recording the identity) on the first start. It refuses,
// naming the cause: a directory in use (ErrLocked), one that is not a
// raftbench node directory (ErrForeignDir), one of another cluster
// (ErrWrongCluster) or of another node (ErrWrongNode). Close releases it.
func OpenDataDir(path string, clusterID, nodeID uint64) (*DataDir, error) {
	if nodeID == 0 {
		return nil, fmt.Errorf("%w: node ID 0", ErrInvalidSpec)
	}
	if path == "" {
		return nil, fmt.Errorf("%w: node %d has no data directory", ErrInvalidSpec, nodeID)
	}
	// Check before creating anything, so a foreign directory gets no LOCK.
	if _, _, err := ReadIdentity(path); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: create data directory: %w", err)
	}
	lock, err := vfs.Default.Lock(filepath.Join(path, lockFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %s (is another raftbench node running on it?): %v", ErrLocked, path, err)
	}
	d := &DataDir{path: path, lock: lock}
	if err := d.claim(clusterID, nodeID); err != nil {
		_ = lock.Close()
		return nil, err
	}
	return d, nil
}

// claim checks the identity (again, now under the lock) and records it on
// the first start.
func (d *DataDir) claim(clusterID, nodeID uint64) error {
	id, ok, err := ReadIdentity(d.path)
	if err != nil {
		return err
	}
	if ok {
		switch {
		case id.ClusterID != clusterID:
			return fmt.Errorf("%w: %s was created for cluster %#x, this node is configured for cluster %#x", ErrWrongCluster, d.path, id.ClusterID, clusterID)
		case id.NodeID != nodeID:
			return fmt.Errorf("%w: %s is node %d's directory, this is node %d", ErrWrongNode, d.path, id.NodeID, nodeID)
		}
		d.id = id
		return nil
	}
	d.id = DirIdentity{Format: dirFormat, ClusterID: clusterID, NodeID: nodeID, Created: time.Now().UTC().Format(time.RFC3339)}
	b, err := json.MarshalIndent(d.id, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.path, IdentityFile, append(b, '\n')); err != nil {
		return fmt.Errorf("cluster: record identity in %s: %w", d.path, err)
	}
	return nil
}

// Path is the directory.
func (d *DataDir) Path() string { return d.path }

// Identity is who the directory belongs to.
func (d *DataDir) Identity() DirIdentity { return d.id }

// WALDir is where the Pebble WAL lives.
func (d *DataDir) WALDir() string { return filepath.Join(d.path, walDir) }

// SnapDir is where snapshot images and the member address book live.
func (d *DataDir) SnapDir() string { return filepath.Join(d.path, snapDir) }

// Close releases the lock. The directory stays for the next start.
func (d *DataDir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close()
	d.lock = nil
	return err
}

// writeFileAtomic writes name in dir under a temporary name, syncs it,
// renames it into place and syncs the directory, so a crash leaves the old
// file or the new one, never part of one.
func writeFileAtomic(dir, name string, b []byte) error {
	f, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(df.Sync(), df.Close())
}
