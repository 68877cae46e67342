// Copyright (c) HashiCorp, Inc.
// SPDX-License-Identifier: MPL-2.0

package raftboltdb

import (
	"bytes"
	"encoding/binary"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// Decode reverses the encode operation on a byte slice input
func decodeMsgPack(buf []byte, out interface{}) error {
	return codec.NewDecoderBytes(buf, &decodeHandle).Decode(out)
}

// The codec handles are shared. A handle caches the encoding functions
// of each type it has seen; a handle made per call built them again for
// every log entry, which was most of the cost of StoreLogs outside the
// commit itself. A configured handle is safe for concurrent use.
var (
	decodeHandle codec.MsgpackHandle
	// encodeHandles[useNewTimeFormat]
	encodeHandles = map[bool]*codec.MsgpackHandle{
		false: {BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}},
		true:  {BasicHandle: codec.BasicHandle{TimeNotBuiltin: false}},
	}
)

// Encode writes an encoded object to a new bytes buffer
func encodeMsgPack(in interface{}, useNewTimeFormat bool) (*bytes.Buffer, error) {
	// Each call gets its own buffer: bbolt keeps a reference to a value
	// until its transaction commits. A log entry is sized up front so that
	// the buffer does not grow from nothing.
	var out []byte
	if l, ok := in.(*raft.Log); ok {
		out = make([]byte, 0, len(l.Data)+len(l.Extensions)+logOverhead)
	}
	err := codec.NewEncoderBytes(&out, encodeHandles[useNewTimeFormat]).Encode(in)
	return bytes.NewBuffer(out), err
}

// logOverhead bounds what a raft.Log's encoding adds to its data and
// extensions: field names, index, term, type, time.
const logOverhead = 96

// Converts bytes to an integer
func bytesToUint64(b []byte) uint64 {
	return binary.BigEndian.Uint64(b)
}

// Converts a uint to a byte slice
func uint64ToBytes(u uint64) []byte {
	buf := make([]byte, 8)
	binary.BigEndian.PutUint64(buf, u)
	return buf
}
