// Integer-only audit of kernels/ (issue #3): (1) disassemble libillm_kernels.a and fail on any floating-point
// instruction; (2) fail on libm symbols the library needs; (3) grep the sources for float types and headers
// that hide floats. Policy (docs/integer-semantics.md): arithmetic, comparisons, conversions, rounding, FMA,
// x87 and MXCSR instructions are flagged; pure moves, bitwise ops and shuffles of xmm/ymm registers
// (movaps, movups, xorps, andps, shufps, unpcklps, …) are allowed: compilers use them for integer data too.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

// The object-code audits are about the library users run: a sanitizer build (ILLM_SANITIZE, clang) instruments the
// kernels with its own checks and type records, and clang picks other instructions than the GCC release build.
#if defined(__SANITIZE_ADDRESS__)
#define ILLM_SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ILLM_SANITIZER_BUILD 1
#endif
#endif
#ifdef ILLM_SANITIZER_BUILD
#define ILLM_SKIP_IN_SANITIZER_BUILD() GTEST_SKIP() << "object-code audit: release build only (this is a sanitizer build)"
#else
#define ILLM_SKIP_IN_SANITIZER_BUILD() (void)0
#endif

namespace {

const std::string kLibrary = std::string(ILLM_BINARY_DIR) + "/libillm_kernels.a";

std::string run_command(const std::string& command) {
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return output;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  pclose(pipe);
  return output;
}

bool is_prefix(const std::string& token) {
  static const std::set<std::string> prefixes = {"rep",  "repz", "repe", "repnz", "repne", "lock", "notrack",
                                                 "bnd",  "data16", "addr32", "cs",  "ds",  "es",   "fs",
                                                 "gs",   "ss",   "xacquire", "xrelease", "rex", "rex.W"};
  return prefixes.count(token) > 0 || token.rfind("rex.", 0) == 0;
}

// True for a mnemonic that computes on, converts or compares floating-point values.
bool is_float_instruction(const std::string& mnemonic) {
  static const std::regex x87(R"(^f[a-z0-9]*$)");  // every x87 mnemonic starts with f (fld, fstp, fadd, ...)
  static const std::regex fp_math(
      R"(^v?(add|sub|mul|div|sqrt|min|max|rcp|rsqrt|rcp14|rsqrt14|round|rndscale|hadd|hsub|addsub|dp|comi|ucomi|cmp[a-z]*|getexp|getmant|scalef|fixupimm|range|reduce|fpclass)(ss|sd|ps|pd|sh|ph)$)");
  static const std::regex fp_fma(R"(^vf(n)?m(add|sub|addsub|subadd)[0-9a-z]*$)");
  static const std::regex fp_convert(R"(^v?cvt[a-z0-9]*$)");
  static const std::regex fp_control(R"(^v?(ldmxcsr|stmxcsr)$)");
  return std::regex_match(mnemonic, x87) || std::regex_match(mnemonic, fp_math) ||
         std::regex_match(mnemonic, fp_fma) || std::regex_match(mnemonic, fp_convert) ||
         std::regex_match(mnemonic, fp_control);
}

TEST(IntegerOnlyAudit, ClassifierSanity) {
  for (const char* m : {"fld", "fstpl", "faddp", "fildll", "fnstcw", "addss", "vaddsd", "mulps", "vmulpd", "divss",
                        "sqrtsd", "vsqrtss", "cvtsi2sd", "cvttsd2si", "cvtss2sd", "vcvtdq2ps", "comiss", "ucomisd",
                        "vfmadd231sd", "vfnmadd213ps", "minsd", "maxps", "roundsd", "cmpltsd", "vrcp14ps",
                        "ldmxcsr"})
    EXPECT_TRUE(is_float_instruction(m)) << m;
  for (const char* m : {"vpaddd", "vpmaddwd", "vpdpbusd", "movdqa", "movaps", "movups", "xorps", "pxor", "paddq",
                        "imul", "mulx", "add", "sub", "shr", "sar", "cqto", "cltq", "movq", "pmuludq", "vpsrad",
                        "vpermq", "shufps", "punpcklqdq", "vpbroadcastd"})
    EXPECT_FALSE(is_float_instruction(m)) << m;
}

TEST(IntegerOnlyAudit, LibraryHasNoFloatingPointInstructions) {
  ILLM_SKIP_IN_SANITIZER_BUILD();
  ASSERT_TRUE(std::filesystem::exists(kLibrary)) << kLibrary;
  const std::string disassembly = run_command("objdump -d --no-show-raw-insn '" + kLibrary + "' 2>&1");
  ASSERT_NE(disassembly.find("file format"), std::string::npos) << "objdump failed:\n" << disassembly.substr(0, 500);
  std::istringstream lines(disassembly);
  std::string line, function;
  std::map<std::string, int> all_mnemonics;
  std::vector<std::string> violations;
  size_t instructions = 0;
  while (std::getline(lines, line)) {
    if (line.size() > 2 && line.back() == ':' && line.find('<') != std::string::npos) {
      function = line;
      continue;
    }
    const size_t tab = line.find(":\t");
    if (tab == std::string::npos) continue;
    std::istringstream fields(line.substr(tab + 2));
    std::string mnemonic;
    while (fields >> mnemonic && is_prefix(mnemonic)) {
    }
    if (mnemonic.empty() || mnemonic == "(bad)") continue;
    ++instructions;
    ++all_mnemonics[mnemonic];
    if (is_float_instruction(mnemonic)) violations.push_back(function + "  " + line);
  }
  std::printf("audited %zu instructions of %s, %zu distinct mnemonics:\n", instructions, kLibrary.c_str(),
              all_mnemonics.size());
  std::string list;
  for (const auto& [m, count] : all_mnemonics) list += m + "(" + std::to_string(count) + ") ";
  std::printf("%s\n", list.c_str());
  std::printf("floating-point instructions found: %zu\n", violations.size());
  for (const auto& v : violations) std::printf("  %s\n", v.c_str());
  EXPECT_GT(instructions, 100u);
  EXPECT_TRUE(violations.empty()) << violations.size() << " floating-point instructions (listed above)";
#if defined(__x86_64__)
  // The ISA microkernels were part of what was audited (their signature integer instructions are present).
  for (const char* m : {"vpdpbusd", "vpmaddubsw", "vpmaddwd", "vpmullq"})
    EXPECT_GT(all_mnemonics[m], 0) << m << " missing: an ISA object file of kernels/optimized was not audited";
#endif
}

// The ISA object files (kernels/optimized/*_avx2.cpp, *_avx512vnni.cpp) are compiled with -mavx2 / -mavx512*: any
// inline function or template they emitted as a weak (COMDAT) symbol could be picked by the linker for every caller,
// putting AVX-512 code on the baseline path. They must define no weak, unique or exported code symbols: only their
// kernel tables (data).
TEST(IntegerOnlyAudit, IsaObjectFilesShareNoCode) {
  ILLM_SKIP_IN_SANITIZER_BUILD();
  ASSERT_TRUE(std::filesystem::exists(kLibrary)) << kLibrary;
  const std::string symbols = run_command("nm -A --defined-only '" + kLibrary + "' 2>&1");
  std::istringstream lines(symbols);
  std::string line;
  std::vector<std::string> violations;
  size_t isa_symbols = 0;
  static const std::regex isa_object(R"(:[^:]*_(avx2|avx512vnni)\.cpp\.o:)");
  while (std::getline(lines, line)) {
    if (!std::regex_search(line, isa_object)) continue;
    std::istringstream fields(line);  // "library.a:object.o:address type name"
    std::string where, type, name;
    fields >> where >> type >> name;
    if (name.empty()) continue;
    ++isa_symbols;
    if (type == "W" || type == "w" || type == "V" || type == "v" || type == "u" || type == "T")
      violations.push_back(line);
  }
  for (const auto& v : violations) std::printf("  %s\n", v.c_str());
#if defined(__x86_64__)
  EXPECT_GT(isa_symbols, 0u) << "no ISA object file found in " << kLibrary;
#endif
  EXPECT_TRUE(violations.empty()) << violations.size() << " shared code symbols in ISA object files (listed above)";
}

TEST(IntegerOnlyAudit, LibraryNeedsNoLibm) {
  const std::string undefined = run_command("nm -u --format=just-symbols '" + kLibrary + "' 2>&1");
  static const std::regex libm(
      R"(^(sqrt|cbrt|exp|exp2|expm1|log|log2|log10|log1p|pow|floor|ceil|round|lround|llround|rint|lrint|nearbyint|trunc|ldexp|frexp|modf|sin|cos|tan|asin|acos|atan|atan2|sinh|cosh|tanh|fabs|fmod|remainder|hypot|erf|erfc|tgamma|lgamma)[fl]?$)");
  std::istringstream lines(undefined);
  std::string symbol;
  std::vector<std::string> found;
  while (std::getline(lines, symbol))
    if (std::regex_match(symbol, libm)) found.push_back(symbol);
  for (const auto& s : found) std::printf("libm symbol needed: %s\n", s.c_str());
  EXPECT_TRUE(found.empty());
}

// Source text with comments, string and character literals blanked out (line structure kept).
std::string strip_comments_and_strings(const std::string& text) {
  std::string out = text;
  enum { kCode, kLine, kBlock, kString, kChar } state = kCode;
  for (size_t i = 0; i < out.size(); ++i) {
    const char c = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    switch (state) {
      case kCode:
        if (c == '/' && next == '/') state = kLine, out[i] = ' ';
        else if (c == '/' && next == '*') state = kBlock, out[i] = ' ';
        else if (c == '"') state = kString;
        else if (c == '\'') state = kChar;
        break;
      case kLine:
        if (c == '\n') state = kCode;
        else out[i] = ' ';
        break;
      case kBlock:
        if (c == '*' && next == '/') state = kCode, out[i] = out[i + 1] = ' ', ++i;
        else if (c != '\n') out[i] = ' ';
        break;
      case kString:
      case kChar:
        if (c == '\\') out[i] = ' ', out[i + 1] = ' ', ++i;
        else if ((state == kString && c == '"') || (state == kChar && c == '\'')) state = kCode;
        else out[i] = ' ';
        break;
    }
  }
  return out;
}

TEST(IntegerOnlyAudit, SourcesUseNoFloatTypesOrFloatHidingHeaders) {
  EXPECT_EQ(strip_comments_and_strings("int a; // double\n/* float */ \"float\" x"),
            std::string("int a; ") + std::string(9, ' ') + "\n" + std::string(12, ' ') + "\"     \" x");
  const std::filesystem::path root = std::filesystem::path(ILLM_SOURCE_DIR) / "kernels";
  static const std::regex forbidden(
      R"((\bfloat\b|\bdouble\b|<cmath>|<math\.h>|\bunordered_map\b|<chrono>|<iostream>))");
  std::vector<std::string> violations;
  size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    const auto& path = entry.path();
    if (!entry.is_regular_file()) continue;
    const std::string ext = path.extension().string();
    if (ext != ".h" && ext != ".cpp" && ext != ".inc") continue;
    ++files;
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::istringstream lines(strip_comments_and_strings(buffer.str()));
    std::string line;
    for (int number = 1; std::getline(lines, line); ++number) {
      std::smatch match;
      if (std::regex_search(line, match, forbidden))
        violations.push_back(path.lexically_relative(root.parent_path()).string() + ":" + std::to_string(number) +
                             ": " + match.str());
    }
  }
  std::printf("checked %zu source files under kernels/\n", files);
  for (const auto& v : violations) std::printf("  %s\n", v.c_str());
  EXPECT_GT(files, 0u);
  EXPECT_TRUE(violations.empty()) << violations.size() << " violations (listed above)";
}

}  // namespace
