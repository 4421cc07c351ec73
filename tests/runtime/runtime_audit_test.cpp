// Integer-only audit of the C99 runtime's core (runtime/illm_rt.c, runtime/illm_rt_tokenizer.c; issue #10) in the
// object code of every target it is built for: x86-64 (the host library), aarch64, riscv64, armhf and Cortex-M4 with
// soft float. No floating-point instruction, and no undefined symbol outside a short allowlist (memcpy/memset, which
// compilers emit, and on 32-bit ARM libgcc's integer division helpers): in particular no float helper call
// (__aeabi_f*, __aeabi_d*, __addsf3, __floatsidf, ...). The sources use no float type, libm or libc header. Prints
// the .text bytes of the core per target.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/runtime/runtime_test_support.h"

namespace illm::rt_testing {
namespace {

namespace fs = std::filesystem;

struct AuditTarget {
  const char* name;
  const char* tool_prefix;  // binutils prefix ("" for the host)
  std::vector<fs::path> objects;
  std::regex float_instruction;  // on the mnemonic (and its type suffix)
  // Instructions (mnemonic, one space, operands) that match float_instruction but only copy a register's bits.
  std::regex register_copy = std::regex("$^");
};

const std::regex kFloatHelper(
    R"(^(__aeabi_[fd].*|__aeabi_u?[il]2[fd]|__aeabi_[fd]2.*|__(add|sub|mul|div|neg|cmp|eq|ne|lt|le|gt|ge|unord|pow)[sdtx]f[23]|__float.*|__fix.*|__extend.*|__trunc.*|.*sqrt.*|.*exp[f]?|.*log[f]?)$)");

std::vector<AuditTarget> targets() {
  const fs::path cross = kBinaryDir / "runtime" / "cross";
  const auto core = [&](const std::string& t) {
    return std::vector<fs::path>{cross / (t + "-illm_rt.o"), cross / (t + "-illm_rt_tokenizer.o")};
  };
  return {
      // x86: x87 (f...), scalar/packed float arithmetic, conversions and compares; integer SIMD and plain moves pass.
      {"x86-64 (host)", "", {kBinaryDir / "runtime" / "libillm_runtime.a"},
       std::regex(R"(^(f[a-z0-9]*|v?(add|sub|mul|div|sqrt|min|max|rcp|rsqrt|round|hadd|dp|comi|ucomi|cmp[a-z]*)(ss|sd|ps|pd)|v?cvt[a-z0-9]*|vf(n)?m(add|sub)[0-9a-z]*|v?(ld|st)mxcsr)$)")},
      // aarch64: every FP data-processing mnemonic starts with f (fadd, fcvt, fcmp, ...) or is scvtf/ucvtf;
      // fmov is a register move.
      {"aarch64", "aarch64-linux-gnu-", core("aarch64"), std::regex(R"(^((?!fmov$)f[a-z0-9]+|[su]cvtf)$)")},
      // riscv64: the F/D extensions' mnemonics start with f (fadd.s, fcvt.d.l, flw, ...); fence is not one.
      {"riscv64", "riscv64-linux-gnu-", core("riscv64"), std::regex(R"(^(?!fence)f[a-z0-9.]+$)")},
      // armhf: VFP arithmetic carries a .f16/.f32/.f64 type (vadd.f64, vcvt.f64.s32); vmov/vldr of d registers
      // move 64-bit integers, and so does vmov.f64 from one d register to another (GCC's copy of a 64-bit integer it
      // keeps in a VFP register: a bit copy, no rounding, no exception; an immediate operand is still refused).
      {"armhf", "arm-linux-gnueabihf-", core("armhf"), std::regex(R"(^v[a-z]+(\.[a-z0-9]+)*\.f(16|32|64)(\.[a-z0-9]+)*$|^vcvt.*)"),
       std::regex(R"(^vmov\.f64 d[0-9]+, d[0-9]+$)")},
      // Cortex-M4 soft float: no VFP instruction of any kind.
      {"cortex-m4 (soft float)", "arm-none-eabi-", core("cortex-m4"), std::regex(R"(^v[a-z].*)")},
  };
}

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

std::string object_list(const std::vector<fs::path>& objects) {
  std::string list;
  for (const fs::path& o : objects) list += " '" + o.string() + "'";
  return list;
}

// Whether one disassembled instruction ("mnemonic\toperands") is floating-point on target t.
bool is_float_instruction(const AuditTarget& t, const std::string& instruction) {
  std::istringstream fields(instruction);
  std::string mnemonic, operands;
  fields >> mnemonic;
  std::getline(fields >> std::ws, operands);
  const size_t comment = operands.find(" @");  // objdump's "@ 0x..." annotations
  if (comment != std::string::npos) operands.resize(comment);
  while (!operands.empty() && std::isspace(static_cast<unsigned char>(operands.back()))) operands.pop_back();
  return std::regex_match(mnemonic, t.float_instruction) && !std::regex_match(mnemonic + " " + operands, t.register_copy);
}

// Disassembles `objects` with the target's objdump; returns the instruction count and the floating-point ones.
size_t float_instructions(const AuditTarget& t, const std::vector<fs::path>& objects, std::vector<std::string>& found) {
  std::istringstream lines(run(std::string(t.tool_prefix) + "objdump -d --no-show-raw-insn" + object_list(objects)));
  std::string line;
  size_t instructions = 0;
  while (std::getline(lines, line)) {
    const size_t tab = line.find(":\t");
    if (tab == std::string::npos) continue;
    std::istringstream fields(line.substr(tab + 2));
    std::string mnemonic;
    fields >> mnemonic;
    if (mnemonic.empty() || mnemonic == "(bad)" || mnemonic == ".word" || mnemonic == ".short") continue;
    ++instructions;
    if (is_float_instruction(t, line.substr(tab + 2))) found.push_back(line);
  }
  return instructions;
}

std::vector<std::string> float_helpers(const AuditTarget& t, const std::vector<fs::path>& objects,
                                       std::vector<std::string>* others = nullptr) {
  static const std::set<std::string> always = {"memcpy", "memset", "memmove", "illm_rt_internal_load_tokenizer"};
  static const std::regex arm_integer_helpers(R"(^__aeabi_(u?idiv(mod)?|u?ldivmod|llsl|llsr|lasr|lmul|mem(cpy|set|clr|move)[48]?)$)");
  std::istringstream symbols(run(std::string(t.tool_prefix) + "nm -u --format=just-symbols" + object_list(objects)));
  std::string symbol;
  std::vector<std::string> helpers;
  while (std::getline(symbols, symbol)) {
    if (symbol.empty() || symbol.back() == ':') continue;  // archive member headers
    if (std::regex_match(symbol, kFloatHelper)) helpers.push_back(symbol);
    else if (others && !always.count(symbol) && !std::regex_match(symbol, arm_integer_helpers)) others->push_back(symbol);
  }
  return helpers;
}

// The audit can fail: a function with float arithmetic, compiled by each target's compiler, is caught (as FP
// instructions, or on Cortex-M as float helper calls).
TEST(RuntimeAudit, CatchesFloatCodeOnEveryTarget) {
  const fs::path dir = fs::temp_directory_path() / ("illm_runtime_audit_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "float.c") << "double scale(double a, int b) { return a * b + 0.5; }\n"
                                    "float half(float x) { return x / 2; }\n";
  for (const AuditTarget& t : targets()) {
    const std::string compiler = std::string(t.tool_prefix).empty() ? "cc" : std::string(t.tool_prefix) + "gcc";
    const std::string flags = std::string(t.tool_prefix) == "arm-none-eabi-" ? " -mcpu=cortex-m4 -mthumb -mfloat-abi=soft" : "";
    const fs::path object = dir / (std::string(t.tool_prefix) + "float.o");
    ASSERT_EQ(std::system((compiler + flags + " -O2 -c '" + (dir / "float.c").string() + "' -o '" + object.string() + "'").c_str()), 0) << t.name;
    std::vector<std::string> found;
    float_instructions(t, {object}, found);
    const std::vector<std::string> helpers = float_helpers(t, {object});
    EXPECT_FALSE(found.empty() && helpers.empty()) << t.name << ": float code not detected";
  }
  fs::remove_all(dir);
}

// The armhf register-copy exception is exactly a d-to-d vmov.f64: arithmetic, an immediate (a float constant) and
// conversions stay floating-point.
TEST(RuntimeAudit, OnlyARegisterToRegisterCopyIsExempt) {
  for (const AuditTarget& t : targets()) {
    if (std::string(t.name) != "armhf") continue;
    EXPECT_FALSE(is_float_instruction(t, "vmov.f64\td9, d8"));
    EXPECT_FALSE(is_float_instruction(t, "vldr\td8, [sp, #144]\t@ 0x90"));
    EXPECT_TRUE(is_float_instruction(t, "vmov.f64\td0, #112\t@ 0x3f800000  1.0"));
    EXPECT_TRUE(is_float_instruction(t, "vadd.f64\td9, d8, d7"));
    EXPECT_TRUE(is_float_instruction(t, "vmov.f32\ts0, s1"));
    EXPECT_TRUE(is_float_instruction(t, "vcvt.f64.s32\td0, s0"));
  }
}

TEST(RuntimeAudit, NoFloatingPointInstructionOnAnyTarget) {
  for (const AuditTarget& t : targets()) {
    for (const fs::path& o : t.objects) ASSERT_TRUE(fs::exists(o)) << o << " not built (scripts/setup.sh installs the compilers)";
    std::vector<std::string> violations;
    const size_t instructions = float_instructions(t, t.objects, violations);
    std::printf("%-24s %zu instructions audited, %zu floating-point\n", t.name, instructions, violations.size());
    for (size_t i = 0; i < violations.size() && i < 20; ++i) std::printf("  %s\n", violations[i].c_str());
    EXPECT_GT(instructions, 2000u) << t.name;
    EXPECT_TRUE(violations.empty()) << t.name << ": floating-point instructions (listed above)";
  }
}

TEST(RuntimeAudit, NoFloatHelperOrLibraryCall) {
  for (const AuditTarget& t : targets()) {
    std::vector<std::string> other;
    const std::vector<std::string> helpers = float_helpers(t, t.objects, &other);
    std::string list;
    for (const auto& s : helpers) list += " " + s;
    for (const auto& s : other) list += " " + s;
    std::printf("%-24s undefined symbols outside the allowlist:%s\n", t.name, list.empty() ? " none" : list.c_str());
    EXPECT_TRUE(helpers.empty()) << t.name << ": float helpers:" << list;
    EXPECT_TRUE(other.empty()) << t.name << ": library calls:" << list;
  }
}

TEST(RuntimeAudit, PrintsTheCoreTextSizePerTarget) {
  std::printf("| target | core .text bytes (illm_rt.c + illm_rt_tokenizer.c) |\n| --- | --- |\n");
  for (const AuditTarget& t : targets()) {
    std::istringstream lines(run(std::string(t.tool_prefix) + "size" + object_list(t.objects)));
    std::string line;
    uint64_t text = 0;
    std::getline(lines, line);  // header
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      uint64_t v = 0;
      if (fields >> v) text += v;
    }
    std::printf("| %s | %llu |\n", t.name, static_cast<unsigned long long>(text));
    EXPECT_GT(text, 10000u) << t.name;
    EXPECT_LT(text, 200000u) << t.name;
  }
}

// Source text without comments and string literals.
std::string code_of(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 2, "/*") == 0) {
      const size_t end = text.find("*/", i + 2);
      i = end == std::string::npos ? text.size() : end + 1;
    } else if (text.compare(i, 2, "//") == 0) {
      while (i < text.size() && text[i] != '\n') ++i;
      out += '\n';
    } else if (text[i] == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;
      out += "\"\"";
    } else {
      out += text[i];
    }
  }
  return out;
}

TEST(RuntimeAudit, CoreSourcesUseNoFloatTypeLibmOrLibc) {
  const std::regex float_use(R"(\b(float|double)\b|<math\.h>|<tgmath\.h>|<complex\.h>)");
  const std::regex libc_use(R"(#\s*include\s*<(stdio|stdlib|string|math|time|assert|ctype)\.h>|\b(malloc|calloc|realloc|free|printf|snprintf)\s*\()");
  for (const char* f : {"illm_rt.h", "illm_rt_format.h", "illm_rt_internal.h", "illm_rt_math.h", "illm_rt.c",
                        "illm_rt_tokenizer.c", "main.c", "boards/mps2_an386.c"}) {
    const std::string code = code_of(kSourceDir / "runtime" / f);
    EXPECT_GT(code.size(), 100u) << f;
    EXPECT_FALSE(std::regex_search(code, float_use)) << f << " uses a float type or libm";
    if (std::string(f) != "main.c") {
      EXPECT_FALSE(std::regex_search(code, libc_use)) << f << " uses the C library";
    }
  }
}

}  // namespace
}  // namespace illm::rt_testing
