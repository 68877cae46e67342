// Copyright (c) HashiCorp, Inc.
// SPDX-License-Identifier: MPL-2.0

package raftboltdb

import (
	"bytes"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// encodeWithFreshHandle is the encoder before the handles were shared.
func encodeWithFreshHandle(in interface{}, useNewTimeFormat bool) []byte {
	buf := bytes.NewBuffer(nil)
	hd := codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: !useNewTimeFormat}}
	if err := codec.NewEncoder(buf, &hd).Encode(in); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func randomLog(r *rand.Rand) *raft.Log {
	l := &raft.Log{
		Index: r.Uint64() >> uint(r.Intn(64)),
		Term:  r.Uint64() >> uint(r.Intn(64)),
		Type:  raft.LogType(r.Intn(6)),
	}
	if r.Intn(4) > 0 {
		l.Data = make([]byte, r.Intn(5000))
		r.Read(l.Data)
	}
	if r.Intn(4) == 0 {
		l.Extensions = make([]byte, r.Intn(300))
		r.Read(l.Extensions)
	}
	if r.Intn(4) > 0 {
		l.AppendedAt = time.Unix(r.Int63n(1<<34), r.Int63n(1e9))
	}
	return l
}

// The shared handles write the bytes a fresh handle wrote, in both time
// formats, so that files written before and after read the same; and
// they decode them back, from many goroutines at once.
func TestSharedHandles_SameBytes(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for i := 0; i < 500; i++ {
				l := randomLog(r)
				for _, newTime := range []bool{false, true} {
					got, err := encodeMsgPack(l, newTime)
					if err != nil {
						t.Error(err)
						return
					}
					if want := encodeWithFreshHandle(l, newTime); !bytes.Equal(got.Bytes(), want) {
						t.Errorf("log %+v, new time format %v: the shared handle wrote other bytes", l, newTime)
						return
					}
					var back raft.Log
					if err := decodeMsgPack(got.Bytes(), &back); err != nil {
						t.Error(err)
						return
					}
					if back.Index != l.Index || back.Term != l.Term || back.Type != l.Type ||
						!bytes.Equal(back.Data, l.Data) || !bytes.Equal(back.Extensions, l.Extensions) ||
						!back.AppendedAt.Equal(l.AppendedAt) {
						t.Errorf("decoded %+v, want %+v", back, *l)
						return
					}
				}
			}
		}(int64(g))
	}
	wg.Wait()
}
