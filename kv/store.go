package kv

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/raftbench/raftbench/node"
)

// DefaultMaxSessions is StoreOptions.MaxSessions' default. A session costs
// about 100 bytes plus its cached reply, so 100,000 sessions are ~10 MB: far
// more clients than a benchmark runs, so a live client is never evicted by
// sheer numbers, yet bounded so a workload that churns client IDs cannot
// grow the state (and every snapshot) without limit.
const DefaultMaxSessions = 100_000

// ErrInvalidOptions is wrapped by every error StoreOptions.Validate and
// ClientOptions.Validate return, and by NewClient's for bad endpoints.
var ErrInvalidOptions = errors.New("kv: invalid options")

// StoreOptions configures a Store. Every replica of a group must use the
// same options: MaxSessions decides evictions, which are part of the
// replicated state.
type StoreOptions struct {
	// MaxSessions bounds how many client sessions are kept; opening one
	// more evicts the least recently used. Default DefaultMaxSessions.
	MaxSessions int
}

// EnsureDefaults fills zero fields with their defaults. It never
// validates, and calling it again changes nothing.
func (o *StoreOptions) EnsureDefaults() {
	if o.MaxSessions == 0 {
		o.MaxSessions = DefaultMaxSessions
	}
}

// Validate reports every invalid field with its value and limit, joined
// into one error wrapping ErrInvalidOptions. It expects defaults applied.
func (o StoreOptions) Validate() error {
	var errs []error
	if o.MaxSessions < 1 {
		errs = append(errs, fmt.Errorf("%w: MaxSessions is %d, must be at least 1", ErrInvalidOptions, o.MaxSessions))
	}
	return errors.Join(errs...)
}

// Store is the replicated key-value state machine; it implements
// node.StateMachine. Apply and Restore are meant to be called from one
// goroutine (the node's apply loop); Read, Get, Hash, Snapshot, Len and
// Stats may be called from any goroutine at any time (a test harness
// comparing replicas needs that), beside Apply and each other.
type Store struct {
	maxSessions int

	// mu guards everything below. Apply holds it for a whole batch, so a
	// concurrent Hash or Snapshot sees the state between batches, never in
	// the middle of one.
	mu sync.RWMutex
	// data maps keys to their slots. Invariant: a value slice that has been
	// handed out (slot.lent: a Read's or a CAS mismatch's Result carries it
	// without copying) is never written into again; a put writes in place
	// only into a slice nobody else has seen.
	data     map[string]*slot
	sessions map[uint64]*session
	// lru holds every session, least recently used first. Invariant: its
	// order is the order of the sessions' last use in the log, which every
	// replica applies identically, so every replica evicts the same one.
	lru *sessionList
	// appliedIndex is the log index of the last command applied.
	appliedIndex uint64

	stats counters
}

// session is one client's exactly-once record.
type session struct {
	clientID uint64
	// lastSeq is the highest sequence number applied for this client;
	// reply is what it was answered, given again to any retry of it.
	lastSeq uint64
	reply   Result
	// lastIndex is the log index of the session's last use (informational
	// and hashed; the eviction order is lru's).
	lastIndex  uint64
	prev, next *session
}

var _ node.StateMachine = (*Store)(nil)

// NewStore returns an empty Store.
func NewStore(opts StoreOptions) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		maxSessions: opts.MaxSessions,
		data:        make(map[string]*slot),
		sessions:    make(map[uint64]*session),
		lru:         newSessionList(),
	}
	return s, nil
}

// Apply applies cmds in order and returns one Result per command. A command
// that does not decode gets a StatusBadCommand result and changes nothing
// but the applied index: the log is what it is, and one bad entry must not
// stop a replica.
func (s *Store) Apply(cmds []node.Command) []any {
	results := make([]any, len(cmds))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range cmds {
		results[i] = boxResult(s.applyOne(cmds[i].Index, cmds[i].Data))
	}
	return results
}

// The results most commands get (every Put, and a Delete or CAS that
// succeeds), boxed once. An interface holding a Result is read only by
// copying it out, so every command can share one: boxing each afresh was
// one allocation per command on every replica, a fifth of a run's
// allocations.
var (
	boxedOK      any = Result{Status: StatusOK}
	boxedOKFound any = Result{Status: StatusOK, Found: true}
)

// boxResult returns r as an any, without allocating for the common results.
func boxResult(r Result) any {
	if r.Status == StatusOK && r.Value == nil && r.Detail == "" {
		if r.Found {
			return boxedOKFound
		}
		return boxedOK
	}
	return r
}

func (s *Store) applyOne(index uint64, data []byte) Result {
	s.appliedIndex = index
	c, err := DecodeCommand(data)
	if err != nil {
		s.stats.bad.Add(1)
		return Result{Status: StatusBadCommand, Detail: err.Error()}
	}
	sess := s.sessions[c.ClientID]
	if sess == nil {
		if c.Op != OpOpen {
			s.stats.expired.Add(1)
			return Result{Status: StatusSessionExpired, Detail: fmt.Sprintf(
				"no session for client %d (%v seq %d): evicted or never opened", c.ClientID, c.Op, c.Seq)}
		}
		s.stats.opens.Add(1)
		sess = &session{clientID: c.ClientID, lastSeq: c.Seq, reply: Result{Status: StatusOK}, lastIndex: index}
		s.sessions[c.ClientID] = sess
		s.lru.pushBack(sess)
		s.evictOverflow()
		return sess.reply
	}
	switch {
	case c.Seq < sess.lastSeq:
		s.stats.stale.Add(1)
		return Result{Status: StatusStaleSequence, Detail: fmt.Sprintf(
			"client %d %v seq %d is below the session's last seq %d", c.ClientID, c.Op, c.Seq, sess.lastSeq)}
	case c.Seq == sess.lastSeq:
		// A retry of the last command: answer as the first time. The
		// client is evidently alive, so this counts as a use.
		s.stats.duplicates.Add(1)
		s.touch(sess, index)
		return sess.reply
	}
	// A sequence number may skip ahead: a client that gave up on a command
	// moves on, and the abandoned one, if it shows up later, is stale.
	sess.reply = s.execute(&c)
	sess.lastSeq = c.Seq
	s.touch(sess, index)
	return sess.reply
}

// execute runs a decoded command that passed the session checks.
func (s *Store) execute(c *Command) Result {
	switch c.Op {
	case OpPut:
		s.stats.puts.Add(1)
		s.put(c.Key, c.Value)
		return Result{Status: StatusOK}
	case OpDelete:
		s.stats.deletes.Add(1)
		found := s.data[string(c.Key)] != nil
		delete(s.data, string(c.Key))
		return Result{Status: StatusOK, Found: found}
	case OpCAS:
		cur, found := s.value(c.Key)
		match := !found
		if !c.ExpectAbsent {
			match = found && bytes.Equal(cur, c.Expected)
		}
		if !match {
			s.stats.casMismatched.Add(1)
			// The reply is cached in the session and may be sent again.
			s.lend(c.Key)
			return Result{Status: StatusCASMismatch, Found: found, Value: cur[:len(cur):len(cur)]}
		}
		s.stats.casSwapped.Add(1)
		s.put(c.Key, c.Value)
		return Result{Status: StatusOK}
	}
	// OpOpen on a live session with a higher seq cannot decode (open is
	// always seq 1), and DecodeCommand rejects every other op.
	panic(fmt.Sprintf("kv: execute %v: unreachable", c.Op))
}

// slot holds one key's value. The map holds slots rather than the values
// themselves so that overwriting a key, what almost every put does, changes
// the slot and not the map: assigning m[string(key)] converts the key to a
// new string on every call (the compiler spares only lookups), and a
// lookup by string(key) allocates nothing. A put also writes the new value
// into the old one's bytes when they fit and were never handed out, so
// overwriting a key allocates nothing at all: the per-put copy of the value
// was a quarter of the bytes a 256-client run allocated. BenchmarkStorePut
// (128 puts overwriting present keys): 257 allocations and 37–44 µs per
// batch with a map assignment and a copy per put, 129 and 32–35 µs with
// slots, 1 (Apply's results) and 22–26 µs with the write in place.
type slot struct {
	v []byte
	// lent says v has been handed out; Reads set it under the read lock,
	// concurrently with each other, hence atomic. A put that replaces a
	// lent value allocates a fresh slice, which nobody has seen.
	lent atomic.Bool
}

// put stores a copy of v under key.
func (s *Store) put(key, v []byte) {
	sl := s.data[string(key)]
	switch {
	case sl == nil:
		s.data[string(key)] = &slot{v: cloneValue(v)}
	case len(v) > 0 && len(v) <= cap(sl.v) && !sl.lent.Load():
		sl.v = sl.v[:len(v)]
		copy(sl.v, v)
	default:
		sl.v = cloneValue(v)
		sl.lent.Store(false)
	}
}

// value returns key's value and whether it is present, for use under the
// lock: the slice may be overwritten by the next put unless lent.
func (s *Store) value(key []byte) ([]byte, bool) {
	if sl := s.data[string(key)]; sl != nil {
		return sl.v, true
	}
	return nil, false
}

// lend marks key's value as handed out, so that no put writes into it
// (Read does the same inline, with the one lookup it makes).
func (s *Store) lend(key []byte) {
	if sl := s.data[string(key)]; sl != nil {
		sl.lent.Store(true)
	}
}

// cloneValue copies a value out of the log's buffer. An empty value is
// stored as nil: Found, not the slice, says whether a key exists.
func cloneValue(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	return bytes.Clone(v)
}

func (s *Store) touch(sess *session, index uint64) {
	sess.lastIndex = index
	s.lru.moveToBack(sess)
}

// evictOverflow evicts least recently used sessions until the bound holds.
func (s *Store) evictOverflow() {
	for len(s.sessions) > s.maxSessions {
		victim := s.lru.front()
		s.lru.remove(victim)
		delete(s.sessions, victim.clientID)
		s.stats.evictions.Add(1)
	}
}

// Read answers a get query made by AppendGetQuery with a Result: StatusOK,
// Found, and the Value (which the caller must not modify). It reads the
// state as of the last Apply; node.Read makes that linearizable.
func (s *Store) Read(query []byte) (any, error) {
	key, err := DecodeGetQuery(query)
	if err != nil {
		return nil, fmt.Errorf("kv: read: %w", err)
	}
	s.stats.reads.Add(1)
	s.mu.RLock()
	var v []byte
	sl := s.data[string(key)]
	if sl != nil {
		// Set only once: reads of a hot key would otherwise all write
		// its cache line.
		if !sl.lent.Load() {
			sl.lent.Store(true)
		}
		// Capacity cut to the length: an append by the caller must not
		// write into the store's spare bytes.
		v = sl.v[:len(sl.v):len(sl.v)]
	}
	s.mu.RUnlock()
	return Result{Status: StatusOK, Found: sl != nil, Value: v}, nil
}

// Get returns a copy of key's value and whether it is present, as of the
// last Apply. Unlike Read it is not a replicated query and counts no read:
// it is for observers (tests, a harness checking the final state) and is
// safe to call concurrently with Apply.
func (s *Store) Get(key []byte) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, found := s.value(key)
	if !found {
		return nil, false
	}
	return cloneValue(v), true // under the lock: a put may write into v
}

// Len returns the number of keys and of sessions.
func (s *Store) Len() (keys, sessions int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.data), len(s.sessions)
}

// AppliedIndex returns the log index of the last command applied (0 before
// any), as restored by Restore.
func (s *Store) AppliedIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.appliedIndex
}

// snapshotVersion is the first byte of a snapshot.
const snapshotVersion = 1

// Snapshot encodes the whole replicated state: applied index, data, and
// sessions with their cached replies in eviction order. The encoding is
// canonical (keys sorted), so equal states give equal bytes:
//
//	snapshot := version(1) appliedIndex(uvarint)
//	            nkeys(uvarint) {key(bytes) value(bytes)}*   keys ascending
//	            nsessions(uvarint) {clientID seq lastIndex (uvarints) result}*
//	                                                        least recent first
//
// where bytes is a uvarint length then the bytes, and result is
// AppendResult's encoding.
func (s *Store) Snapshot() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.appendStateLocked(nil), nil
}

// Hash returns a SHA-256 digest of the replicated state (what Snapshot
// encodes): two replicas that applied the same log have equal hashes, and a
// difference in any value, session or cached reply shows.
func (s *Store) Hash() [32]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sha256.Sum256(s.appendStateLocked(nil))
}

// StateHash returns Hash together with the log index of the last command
// the hashed state reflects (AppliedIndex), read under one lock, so the
// pair is exact even while Apply runs. With the node's applied index read
// before the call, it tells whether the hash is of the state at a given
// index (see the admin endpoint's /hash).
func (s *Store) StateHash() (hash [32]byte, index uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sha256.Sum256(s.appendStateLocked(nil)), s.appliedIndex
}

// StateImage returns Snapshot's image together with the log index of the
// last command it reflects (AppliedIndex), read under one lock, so the pair
// is exact even while Apply runs: StateHash's rule, for a harness that
// reads whole replicas (to look up every acknowledged write on each) rather
// than their digests.
func (s *Store) StateImage() (image []byte, index uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.appendStateLocked(nil), s.appliedIndex
}

// appendStateLocked appends the image of the state (Snapshot's encoding)
// to dst, growing it once to the image's exact size first: grown by
// appends instead, the image was allocated about twice over, 11% of the
// bytes a 256-client run allocated (a snapshot every 10,000 entries).
func (s *Store) appendStateLocked(dst []byte) []byte {
	n := 1 + uvarintLen(s.appliedIndex) + uvarintLen(uint64(len(s.data))) + uvarintLen(uint64(len(s.sessions)))
	keys := make([]string, 0, len(s.data))
	for k, sl := range s.data {
		keys = append(keys, k)
		n += uvarintLen(uint64(len(k))) + len(k) + bytesLen(sl.v)
	}
	for sess := s.lru.front(); sess != nil; sess = s.lru.after(sess) {
		n += uvarintLen(sess.clientID) + uvarintLen(sess.lastSeq) + uvarintLen(sess.lastIndex) + resultLen(sess.reply)
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, snapshotVersion)
	dst = binary.AppendUvarint(dst, s.appliedIndex)
	slices.Sort(keys)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = appendBytes(dst, []byte(k))
		dst = appendBytes(dst, s.data[k].v)
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.sessions)))
	for sess := s.lru.front(); sess != nil; sess = s.lru.after(sess) {
		dst = binary.AppendUvarint(dst, sess.clientID)
		dst = binary.AppendUvarint(dst, sess.lastSeq)
		dst = binary.AppendUvarint(dst, sess.lastIndex)
		dst = AppendResult(dst, sess.reply)
	}
	return dst
}

// Restore replaces the whole state with a snapshot made by Snapshot. The
// snapshot is checked completely before anything changes: on error (which
// wraps ErrBadEncoding) the store is as it was. A snapshot with more
// sessions than this store's MaxSessions keeps the most recently used.
func (s *Store) Restore(snap []byte) error {
	d := decoder{buf: snap}
	if v := d.byte("snapshot version"); d.err == nil && v != snapshotVersion {
		d.fail("snapshot version %d, want %d", v, snapshotVersion)
	}
	applied := d.uvarint("applied index")
	nkeys := d.uvarint("key count")
	// Every key costs at least two bytes, every session at least five, so
	// counts beyond what is left are garbage, not a reason to allocate.
	if d.err == nil && nkeys > uint64(len(snap)-d.off)/2 {
		d.fail("key count %d exceeds what %d bytes can hold", nkeys, len(snap)-d.off)
		nkeys = 0
	}
	data := make(map[string]*slot, nkeys)
	var prev string
	for i := uint64(0); i < nkeys && d.err == nil; i++ {
		k := string(d.bytes("key"))
		v := cloneValue(d.bytes("value"))
		if i > 0 && k <= prev {
			d.fail("key %q not above the previous key %q", k, prev)
		}
		data[k], prev = &slot{v: v}, k
	}
	nsess := d.uvarint("session count")
	if d.err == nil && nsess > uint64(len(snap)-d.off)/5 {
		d.fail("session count %d exceeds what %d bytes can hold", nsess, len(snap)-d.off)
		nsess = 0
	}
	sessions := make(map[uint64]*session, nsess)
	lru := newSessionList()
	for i := uint64(0); i < nsess && d.err == nil; i++ {
		sess := &session{
			clientID:  d.uvarint("client ID"),
			lastSeq:   d.uvarint("sequence number"),
			lastIndex: d.uvarint("last index"),
			reply:     d.result(),
		}
		switch {
		case d.err != nil:
		case sess.clientID == 0 || sess.lastSeq == 0:
			d.fail("session with client ID %d seq %d", sess.clientID, sess.lastSeq)
		case sessions[sess.clientID] != nil:
			d.fail("client %d has two sessions", sess.clientID)
		}
		sess.reply.Value = cloneValue(sess.reply.Value)
		sessions[sess.clientID] = sess
		lru.pushBack(sess)
	}
	d.end()
	if d.err != nil {
		return fmt.Errorf("kv: restore snapshot: %w", d.err)
	}
	// A CAS mismatch reply shares its value with the data it saw, which is
	// therefore lent and never written into again; after a restore the
	// reply has its own copy, which is equal and never written into either,
	// so the difference cannot be observed.
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appliedIndex, s.data, s.sessions, s.lru = applied, data, sessions, lru
	s.evictOverflow()
	return nil
}

// Stats counts what this Store object did since NewStore: how many commands
// actually executed (per kind) and how many were answered without running.
// Tests use it to prove exactly-once. It is per replica and not part of the
// replicated state: Snapshot, Restore and Hash ignore it.
type Stats struct {
	Opens, Puts, Deletes, CASSwapped, CASMismatched uint64 // executed
	Duplicates, Stale, Expired, Bad                 uint64 // answered, not executed
	Evictions                                       uint64 // sessions evicted
	Reads                                           uint64 // queries answered
}

// Executed is the number of data commands that ran (a mismatched CAS ran:
// it read and decided).
func (st Stats) Executed() uint64 {
	return st.Puts + st.Deletes + st.CASSwapped + st.CASMismatched
}

// counters are atomics so Stats can be read while Apply runs.
type counters struct {
	opens, puts, deletes, casSwapped, casMismatched atomic.Uint64
	duplicates, stale, expired, bad, evictions      atomic.Uint64
	reads                                           atomic.Uint64
}

// Stats returns the counters; each is exact, but they are read one by one,
// so while Apply runs they may be from slightly different moments.
func (s *Store) Stats() Stats {
	c := &s.stats
	return Stats{
		Opens: c.opens.Load(), Puts: c.puts.Load(), Deletes: c.deletes.Load(),
		CASSwapped: c.casSwapped.Load(), CASMismatched: c.casMismatched.Load(),
		Duplicates: c.duplicates.Load(), Stale: c.stale.Load(), Expired: c.expired.Load(),
		Bad: c.bad.Load(), Evictions: c.evictions.Load(), Reads: c.reads.Load(),
	}
}

// sessionList is an intrusive doubly linked list of sessions around a
// sentinel, so moving a session to the back on every use is O(1) without
// allocating.
type sessionList struct {
	root session
}

// newSessionList returns an empty list. It must be used by pointer: the
// ends point at root.
func newSessionList() *sessionList {
	l := &sessionList{}
	l.root.prev, l.root.next = &l.root, &l.root
	return l
}

func (l *sessionList) front() *session {
	if l.root.next == &l.root {
		return nil
	}
	return l.root.next
}

func (l *sessionList) after(s *session) *session {
	if s.next == &l.root {
		return nil
	}
	return s.next
}

func (l *sessionList) pushBack(s *session) {
	s.prev, s.next = l.root.prev, &l.root
	l.root.prev.next = s
	l.root.prev = s
}

func (l *sessionList) remove(s *session) {
	s.prev.next, s.next.prev = s.next, s.prev
	s.prev, s.next = nil, nil
}

func (l *sessionList) moveToBack(s *session) {
	if l.root.prev == s {
		return
	}
	l.remove(s)
	l.pushBack(s)
}
