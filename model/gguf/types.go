package gguf

import "fmt"

// GGMLType is a tensor element type, numbered as ggml's enum ggml_type.
type GGMLType uint32

// The ggml types alignkit writes or dequantises. Other known types are parsed and size-checked but not
// dequantised.
const (
	TypeF32  GGMLType = 0
	TypeF16  GGMLType = 1
	TypeQ4_0 GGMLType = 2
	TypeQ8_0 GGMLType = 8
	TypeQ4_K GGMLType = 12
	TypeQ6_K GGMLType = 14
	TypeBF16 GGMLType = 30
)

// typeTraits is a ggml type's block: blockSize elements are stored in blockBytes bytes.
type typeTraits struct {
	name       string
	blockSize  uint64
	blockBytes uint64
}

// ggmlTypes are ggml's type traits (ggml.c type_traits). Ids 4, 5 and 31-33 were removed from ggml and
// are rejected. Sizes of the k-quant and i-quant blocks are their C struct sizes.
var ggmlTypes = map[GGMLType]typeTraits{
	0:  {"F32", 1, 4},
	1:  {"F16", 1, 2},
	2:  {"Q4_0", 32, 18},
	3:  {"Q4_1", 32, 20},
	6:  {"Q5_0", 32, 22},
	7:  {"Q5_1", 32, 24},
	8:  {"Q8_0", 32, 34},
	9:  {"Q8_1", 32, 36},
	10: {"Q2_K", 256, 84},
	11: {"Q3_K", 256, 110},
	12: {"Q4_K", 256, 144},
	13: {"Q5_K", 256, 176},
	14: {"Q6_K", 256, 210},
	15: {"Q8_K", 256, 292},
	16: {"IQ2_XXS", 256, 66},
	17: {"IQ2_XS", 256, 74},
	18: {"IQ3_XXS", 256, 98},
	19: {"IQ1_S", 256, 50},
	20: {"IQ4_NL", 32, 18},
	21: {"IQ3_S", 256, 110},
	22: {"IQ2_S", 256, 82},
	23: {"IQ4_XS", 256, 136},
	24: {"I8", 1, 1},
	25: {"I16", 1, 2},
	26: {"I32", 1, 4},
	27: {"I64", 1, 8},
	28: {"F64", 1, 8},
	29: {"IQ1_M", 256, 56},
	30: {"BF16", 1, 2},
	34: {"TQ1_0", 256, 54},
	35: {"TQ2_0", 256, 66},
	39: {"MXFP4", 32, 17},
}

// String is ggml's name for the type ("Q8_0"), or "type(N)" for an unknown id.
func (t GGMLType) String() string {
	if tr, ok := ggmlTypes[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// GGUF metadata value types (gguf.h enum gguf_type).
const (
	valUint8   uint32 = 0
	valInt8    uint32 = 1
	valUint16  uint32 = 2
	valInt16   uint32 = 3
	valUint32  uint32 = 4
	valInt32   uint32 = 5
	valFloat32 uint32 = 6
	valBool    uint32 = 7
	valString  uint32 = 8
	valArray   uint32 = 9
	valUint64  uint32 = 10
	valInt64   uint32 = 11
	valFloat64 uint32 = 12
)

// fixedSize is the encoded size of a scalar value type; 0 for strings and arrays.
func fixedSize(t uint32) uint64 {
	switch t {
	case valUint8, valInt8, valBool:
		return 1
	case valUint16, valInt16:
		return 2
	case valUint32, valInt32, valFloat32:
		return 4
	case valUint64, valInt64, valFloat64:
		return 8
	}
	return 0
}

// minSize is the fewest bytes a value of type t can take, used to bound counts against the file size
// before allocating: a string is at least its 8-byte length, an array its 4-byte type and 8-byte count.
func minSize(t uint32) uint64 {
	switch t {
	case valString:
		return 8
	case valArray:
		return 12
	}
	return fixedSize(t)
}

// File types (llama.h enum llama_ftype) written as general.file_type.
const (
	fileTypeAllF32    uint32 = 0
	fileTypeMostlyF16 uint32 = 1
	fileTypeMostlyQ40 uint32 = 2
	fileTypeMostlyQ80 uint32 = 7
)

// llama.cpp token types (llama.h enum llama_token_type), the same numbers as SentencePiece's piece types.
const (
	TokenNormal      int32 = 1
	TokenUnknown     int32 = 2
	TokenControl     int32 = 3
	TokenUserDefined int32 = 4
	TokenUnused      int32 = 5
	TokenByte        int32 = 6
)
