package wal

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/raftbench/raftbench/core"
)

// The benchmark grid shared by BenchmarkSave and BenchmarkPebbleRaw, so
// that benchstat can put the two side by side point by point.
var (
	benchPayloads = []int{16, 128, 1024, 4096}
	benchBatches  = []int{1, 64, 512}
)

func benchGrid(b *testing.B, fn func(b *testing.B, payload, batch int, sync bool)) {
	for _, payload := range benchPayloads {
		for _, batch := range benchBatches {
			for _, sync := range []bool{true, false} {
				name := fmt.Sprintf("payload=%d/batch=%d/sync=%s", payload, batch, map[bool]string{true: "on", false: "off"}[sync])
				b.Run(name, func(b *testing.B) {
					b.SetBytes(int64(payload * batch))
					fn(b, payload, batch, sync)
					b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
				})
			}
		}
	}
}

func benchPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	return p
}

// BenchmarkSave measures PebbleLog.Save of batch entries of payload bytes
// each, on the real filesystem. Compare it with BenchmarkPebbleRaw.
func BenchmarkSave(b *testing.B) {
	benchGrid(b, func(b *testing.B, payload, batch int, sync bool) {
		l, err := OpenPebble(b.TempDir(), PebbleOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		data := benchPayload(payload)
		ents := make([]core.Entry, batch)
		next := uint64(1)
		for b.Loop() {
			for k := range ents {
				ents[k] = core.Entry{Index: next, Term: 1, Data: data}
				next++
			}
			if err := l.Save(core.HardState{}, ents, sync); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPebbleRaw writes the same payloads under the same keys straight
// into Pebble batches, with the same Pebble options: the ceiling Save is
// measured against. What Save adds is validation, encoding, checksums and
// the in-memory bookkeeping.
func BenchmarkPebbleRaw(b *testing.B) {
	benchGrid(b, func(b *testing.B, payload, batch int, sync bool) {
		var o PebbleOptions
		o.EnsureDefaults()
		db, err := pebble.Open(b.TempDir(), o.pebbleOptions())
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		data := benchPayload(payload)
		key := make([]byte, keyLen)
		opts := pebble.NoSync
		if sync {
			opts = pebble.Sync
		}
		next := uint64(1)
		for b.Loop() {
			wb := db.NewBatch()
			for k := 0; k < batch; k++ {
				putKey(key, kindEntry, 0, next)
				next++
				if err := wb.Set(key, data, nil); err != nil {
					b.Fatal(err)
				}
			}
			if err := wb.Commit(opts); err != nil {
				b.Fatal(err)
			}
			wb.Close()
		}
	})
}
