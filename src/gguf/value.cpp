// Metadata values: constructors, comparisons, names.
#include "gguf/gguf.h"

namespace strata::gguf {

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kU8: return "u8";
    case ValueType::kI8: return "i8";
    case ValueType::kU16: return "u16";
    case ValueType::kI16: return "i16";
    case ValueType::kU32: return "u32";
    case ValueType::kI32: return "i32";
    case ValueType::kF32: return "f32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kU64: return "u64";
    case ValueType::kI64: return "i64";
    case ValueType::kF64: return "f64";
  }
  return "?";
}

size_t Value::array_size() const {
  if (type != ValueType::kArray) return 0;
  return ints.size() + floats.size() + strings.size() + arrays.size();
}

bool Value::is_integer() const {
  switch (type) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kU16: case ValueType::kI16:
    case ValueType::kU32: case ValueType::kI32: case ValueType::kU64: case ValueType::kI64:
    case ValueType::kBool:
      return true;
    default:
      return false;
  }
}

bool Value::is_float() const { return type == ValueType::kF32 || type == ValueType::kF64; }

Value Value::u32(uint32_t v) { Value x; x.type = ValueType::kU32; x.i = v; return x; }
Value Value::i32(int32_t v) { Value x; x.type = ValueType::kI32; x.i = v; return x; }
Value Value::u64(uint64_t v) { Value x; x.type = ValueType::kU64; x.i = static_cast<int64_t>(v); return x; }
Value Value::f32(float v) { Value x; x.type = ValueType::kF32; x.f = v; return x; }
Value Value::boolean(bool v) { Value x; x.type = ValueType::kBool; x.i = v ? 1 : 0; return x; }
Value Value::string(std::string v) { Value x; x.type = ValueType::kString; x.s = std::move(v); return x; }

Value Value::string_array(std::vector<std::string> v) {
  Value x;
  x.type = ValueType::kArray;
  x.elem_type = ValueType::kString;
  x.strings = std::move(v);
  return x;
}

Value Value::f32_array(std::vector<float> v) {
  Value x;
  x.type = ValueType::kArray;
  x.elem_type = ValueType::kF32;
  x.floats.assign(v.begin(), v.end());
  return x;
}

Value Value::i32_array(std::vector<int32_t> v) {
  Value x;
  x.type = ValueType::kArray;
  x.elem_type = ValueType::kI32;
  x.ints.assign(v.begin(), v.end());
  return x;
}

bool Value::operator==(const Value& o) const {
  if (type != o.type) return false;
  if (type == ValueType::kArray) {
    return elem_type == o.elem_type && ints == o.ints && floats == o.floats && strings == o.strings &&
           arrays == o.arrays;
  }
  return i == o.i && f == o.f && s == o.s;
}

int64_t TensorInfo::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace strata::gguf
