// `illm quantize` at scale, on tiny synthetic checkpoints (tools/synthetic_checkpoint: sharded BF16 with the HF
// index, GQA): a run killed by SIGKILL after a block (or between a block's two commits) and continued with --resume
// writes the same bytes as an uninterrupted run; the --json report has per-block seconds and peak RSS; bad input at
// scale (a missing shard, a shard truncated mid-run, a full disk, --device cuda without CUDA) is one clear line with
// nothing half-written; sweep shards run as a Slurm array (the scripts/slurm scripts, as separate processes) merge
// to the single-process sweep; the quantize job-array script runs its line.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "tests/converter/cli_runner.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using CommandResult = illm::testing::CliResult;
const auto& slurp = illm::testing::read_whole_file;

const std::string& kIllm = illm::testing::kIllmBinary;
const std::string kSynthetic = std::string(ILLM_BINARY_DIR) + "/tools/synthetic_checkpoint";
const std::string kScripts = illm::testing::kSourceDir + "/scripts/slurm";

// The shell reports a SIGKILLed child as exit status 137.
bool killed(const CommandResult& r) { return r.exit_code == 128 + 9; }

std::string quote(const fs::path& p) {
  std::string quoted = "'";  // built in steps: GCC 12 warns (-Wrestrict, falsely) about "'" + string
  quoted += p.string();
  quoted += "'";
  return quoted;
}

class ScaleCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("illm_scale_cli_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    model_ = dir_ / "model";
    // 3 decoder layers in 2 shards with the index, GQA (8 query / 4 KV heads), BF16, 64-token windows.
    const CommandResult gen = shell(quote(kSynthetic) + " -o " + quote(model_) +
                          " --layers 3 --shards 2 --calib-windows 4 --calib-len 32 --eval-windows 2 --eval-len 32 -q");
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    recipe_ = dir_ / "tiny-fsbr.json";
    std::ofstream(recipe_) << R"({"method": "fsbr", "w_bits": 4, "a_bits": 8, "epochs": 1, "samples": 4,
                                  "seq_len": 32, "seed": 3, "smooth_init": "smoothquant", "clip_c": 15})";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs `command` with /bin/sh, capturing stdout and stderr.
  CommandResult shell(const std::string& command) const {
    const fs::path out = dir_ / "run.stdout", err = dir_ / "run.stderr";
    const int status = std::system(("(" + command + ") >" + quote(out) + " 2>" + quote(err) + " </dev/null").c_str());
    CommandResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  CommandResult quantize(const fs::path& output, const std::string& extra = "", const std::string& env = "") const {
    return shell(env + " " + quote(kIllm) + " quantize --model " + quote(model_) + " --recipe " + quote(recipe_) +
                 " --threads 1 --max-tokens 4 -o " + quote(output) + " " + extra);
  }

  // A SIGKILL of the quantize process from its test hook when stage and block match.
  static std::string kill_at(const std::string& stage, int block) {
    return "ILLM_TEST_HOOK='[ \"$ILLM_HOOK_STAGE\" = " + stage + " ] && [ \"$ILLM_HOOK_BLOCK\" = " +
           std::to_string(block) + " ] && kill -9 $PPID'";
  }

  // Nothing but `expected` (file names) in the output's directory.
  void expect_only(const std::set<std::string>& expected) const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_ / "out")) names.insert(e.path().filename().string());
    EXPECT_EQ(names, expected);
  }

  fs::path dir_, model_, recipe_;
};

void expect_one_line_error(const CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("illm quantize: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.err;
}

TEST_F(ScaleCli, ResumeAfterSigkillIsByteIdentical) {
  fs::create_directories(dir_ / "out");
  const fs::path reference = dir_ / "out" / "reference.illm";
  const CommandResult full = quantize(reference, "--json -q");
  ASSERT_EQ(full.exit_code, 0) << full.err;
  const Json report = Json::parse(full.out);
  EXPECT_EQ(report.at("resumed_from_block").get<int>(), 0);
  ASSERT_EQ(report.at("calibration").at("blocks").size(), 3u);
  for (const auto& b : report.at("calibration").at("blocks")) {
    EXPECT_GE(b.at("seconds").get<double>(), 0.0);
    EXPECT_GT(b.at("peak_rss_bytes").get<int64_t>(), 1 << 20);
  }
  // VmHWM never falls, but the kernel folds per-thread RSS counters into it lazily, so two reads can be a few
  // pages out of order (seen: 183.8 then 183.6 MB under load): compare with a 2 % allowance.
  const int64_t last_block_peak = report.at("calibration").at("blocks")[2].at("peak_rss_bytes").get<int64_t>();
  EXPECT_GE(report.at("peak_rss_bytes").get<int64_t>(), last_block_peak - last_block_peak / 50);
  const std::string expected = slurp(reference);

  for (const auto& [stage, block] : {std::pair{std::string("block-committed"), 1}, {std::string("layer-written"), 0}}) {
    SCOPED_TRACE(stage + " " + std::to_string(block));
    const fs::path output = dir_ / "out" / "resumed.illm";
    const CommandResult interrupted = quantize(output, "-q", kill_at(stage, block));
    ASSERT_TRUE(killed(interrupted)) << "exit " << interrupted.exit_code << ": " << interrupted.err;
    EXPECT_FALSE(fs::exists(output)) << "a killed run leaves no model file";
    ASSERT_TRUE(fs::exists(output.string() + ".partial/state.json"));
    const Json state = Json::parse(slurp(output.string() + ".partial/state.json"));
    EXPECT_EQ(state.at("blocks").size(), stage == "block-committed" ? 2u : 0u);

    expect_one_line_error(quantize(output, "-q"), "--resume");  // the state is not silently discarded
    const CommandResult resumed = quantize(output, "--resume --json");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_NE(resumed.err.find("resume"), std::string::npos) << resumed.err;
    EXPECT_EQ(Json::parse(resumed.out).at("resumed_from_block").get<int>(), stage == "block-committed" ? 2 : 0);
    EXPECT_TRUE(slurp(output) == expected) << "the resumed run wrote other bytes than the uninterrupted one";
    EXPECT_FALSE(fs::exists(output.string() + ".partial")) << "the state is removed once the file is written";
    fs::remove(output);
    fs::remove(output.string() + ".json");
  }
  // --resume with nothing to resume starts afresh (and says so).
  const CommandResult fresh = quantize(dir_ / "out" / "fresh.illm", "--resume");
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_NE(fresh.err.find("nothing to resume"), std::string::npos) << fresh.err;
  EXPECT_TRUE(slurp(dir_ / "out" / "fresh.illm") == expected);
}

// The offline rotations and GPTQ of issue #12 keep the resume guarantee: the residual rotation comes from the
// recipe's seed alone (blocks rotated as they are loaded, embedding rows for block 0's inputs and for the assembled
// model, head rows), so a run killed after block 1 and resumed writes the uninterrupted run's bytes. Not vacuous:
// the rotated model's bytes differ from the unrotated recipe's.
TEST_F(ScaleCli, ResumeWithRotationAndGptqIsByteIdentical) {
  fs::create_directories(dir_ / "out");
  const fs::path plain = dir_ / "out" / "plain.illm";
  ASSERT_EQ(quantize(plain, "-q").exit_code, 0);
  std::ofstream(recipe_) << R"({"method": "fsbr", "w_bits": 4, "a_bits": 8, "epochs": 1, "samples": 4,
                                "seq_len": 32, "seed": 3, "smooth_init": "smoothquant", "clip_c": 15,
                                "rotation": "hadamard", "rotate_heads": true, "gptq": true, "gptq_act_order": true})";
  const fs::path reference = dir_ / "out" / "reference.illm";
  const CommandResult full = quantize(reference, "-q");
  ASSERT_EQ(full.exit_code, 0) << full.err;
  const std::string expected = slurp(reference);
  EXPECT_FALSE(expected == slurp(plain)) << "the rotation changed nothing";

  const fs::path output = dir_ / "out" / "resumed.illm";
  ASSERT_TRUE(killed(quantize(output, "-q", kill_at("block-committed", 1))));
  const CommandResult resumed = quantize(output, "--resume --json");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(Json::parse(resumed.out).at("resumed_from_block").get<int>(), 2);
  EXPECT_TRUE(slurp(output) == expected) << "the resumed rotated run wrote other bytes than the uninterrupted one";
}

// gptq_head keeps the resume guarantee: the LM head's Hessian is written into the state before the last block
// commits, so a run killed after that commit (nothing left to calibrate) and one killed after block 1 (the resumed
// run computes it) both write the uninterrupted run's bytes. Not vacuous: the head's codes differ from the recipe
// without gptq_head.
TEST_F(ScaleCli, ResumeWithGptqHeadIsByteIdentical) {
  fs::create_directories(dir_ / "out");
  const fs::path plain = dir_ / "out" / "plain.illm";
  ASSERT_EQ(quantize(plain, "-q").exit_code, 0);
  std::ofstream(recipe_) << R"({"method": "fsbr", "w_bits": 4, "a_bits": 8, "epochs": 1, "samples": 4,
                                "seq_len": 32, "seed": 3, "smooth_init": "smoothquant", "clip_c": 15,
                                "gptq_head": true})";
  const fs::path reference = dir_ / "out" / "reference.illm";
  const CommandResult full = quantize(reference, "-q --json");
  ASSERT_EQ(full.exit_code, 0) << full.err;
  EXPECT_TRUE(Json::parse(full.out).at("recipe").at("gptq_head").get<bool>());
  const std::string expected = slurp(reference);
  // (h5dump's first line names the file.)
  const CommandResult dump = shell("h5dump -d /model/lm_head/codes " + quote(reference) + " | sed 1d | md5sum; h5dump -d "
                                   "/model/lm_head/codes " + quote(plain) + " | sed 1d | md5sum");
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  const size_t newline = dump.out.find('\n');
  EXPECT_NE(dump.out.substr(0, newline), dump.out.substr(newline + 1)) << "gptq_head changed no head code";

  for (const int block : {2, 1}) {
    SCOPED_TRACE(block);
    const fs::path output = dir_ / "out" / "resumed.illm";
    ASSERT_TRUE(killed(quantize(output, "-q", kill_at("block-committed", block))));
    EXPECT_EQ(fs::exists(output.string() + ".partial/head-hessian.f64"), block == 2);
    const CommandResult resumed = quantize(output, "--resume --json");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_EQ(Json::parse(resumed.out).at("resumed_from_block").get<int>(), block + 1);
    EXPECT_TRUE(slurp(output) == expected) << "the resumed run wrote other bytes than the uninterrupted one";
    fs::remove(output);
    fs::remove(output.string() + ".json");
  }
}

TEST_F(ScaleCli, ResumeRefusesAnotherRecipe) {
  fs::create_directories(dir_ / "out");
  const fs::path output = dir_ / "out" / "m.illm";
  ASSERT_TRUE(killed(quantize(output, "-q", kill_at("block-committed", 0))));
  std::ofstream(recipe_) << R"({"method": "rtn", "w_bits": 4, "a_bits": 8, "samples": 4, "seq_len": 32})";
  expect_one_line_error(quantize(output, "--resume -q"), "the recipe differs");
}

TEST_F(ScaleCli, DeviceCudaWithoutCudaIsAClearError) {
  fs::create_directories(dir_ / "out");
  const CommandResult r = quantize(dir_ / "out" / "m.illm", "--device cuda -q");
  expect_one_line_error(r, "--device cuda");
  expect_only({});
}

TEST_F(ScaleCli, MissingShard) {
  fs::create_directories(dir_ / "out");
  fs::remove(model_ / "model-00002-of-00002.safetensors");
  expect_one_line_error(quantize(dir_ / "out" / "m.illm", "-q"), "model-00002-of-00002.safetensors");
  expect_only({});
}

TEST_F(ScaleCli, ShardTruncatedMidRun) {
  fs::create_directories(dir_ / "out");
  // The shard holding the last layer is cut to 1000 bytes after block 0 is done.
  const Json index = Json::parse(slurp(model_ / "model.safetensors.index.json"));
  const fs::path shard = model_ / index.at("weight_map").at("model.layers.2.mlp.down_proj.weight").get<std::string>();
  const std::string hook = "ILLM_TEST_HOOK='[ \"$ILLM_HOOK_STAGE\" = block-committed ] && [ \"$ILLM_HOOK_BLOCK\" = 0 ] "
                           "&& truncate -s 1000 " + quote(shard) + "'";
  const fs::path output = dir_ / "out" / "m.illm";
  const CommandResult r = quantize(output, "-q", hook);
  expect_one_line_error(r, shard.filename().string());
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
  // No model file; the work directory keeps the finished block (resumable once the shard is back).
  expect_only({"m.illm.partial"});
  expect_one_line_error(quantize(output, "--resume -q"), shard.filename().string());
}

TEST_F(ScaleCli, DiskFullWhileWritingTheState) {
  fs::create_directories(dir_ / "out");
  const fs::path output = dir_ / "out" / "m.illm";
  // 16 KiB per file: state.json fits, the first block's activation files (4 x 32 x 64 floats = 32 KiB) do not.
  // SIGXFSZ is ignored, so the write fails with EFBIG as on a full disk.
  const CommandResult r = shell("exec bash -c \"trap '' XFSZ; ulimit -f 16; exec " + quote(kIllm) + " quantize --model " +
                                quote(model_) + " --recipe " + quote(recipe_) + " --threads 1 -q -o " + quote(output) +
                                "\"");
  expect_one_line_error(r, "inputs-000");
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(output));
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "out"))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  // With room again, --resume finishes.
  const CommandResult resumed = quantize(output, "--resume -q");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(fs::exists(output));
}

// Points of a results.json by id, without timings.
std::map<std::string, Json> points_without_times(const Json& results) {
  std::map<std::string, Json> points;
  for (Json p : results.at("points")) {
    const std::string c = p.at("c").is_string() ? p.at("c").get<std::string>() : p.at("c").dump();
    p.erase("calibration_seconds");
    p.erase("integer_eval_seconds");
    points[p.at("bits").get<std::string>() + "-c" + c] = p;
  }
  return points;
}

TEST_F(ScaleCli, SweepShardsAsSlurmArrayMergeToTheSingleProcessSweep) {
  const fs::path recipes = dir_ / "recipes";
  fs::create_directories(recipes);
  for (const char* bits : {"w8a8", "w4a4"})
    std::ofstream(recipes / (std::string(bits) + ".json"))
        << R"({"method": "rtn", "w_bits": )" << bits[1] << R"(, "a_bits": )" << bits[3]
        << R"(, "samples": 2, "seq_len": 32, "clip_c": 15})";
  const std::string args = "--model " + quote(model_) + " --method rtn --bits w8a8,w4a4 --clip 8,none "
                           "--recipe-dir " + quote(recipes) + " -q";
  const CommandResult single = shell(quote(kIllm) + " sweep " + args + " --threads 1 -o " + quote(dir_ / "single"));
  ASSERT_EQ(single.exit_code, 0) << single.err;

  // The array's two tasks as two concurrent processes, each into its own shard directory.
  const fs::path out = dir_ / "array";
  auto task = [&](int id) {
    return "SLURM_ARRAY_TASK_ID=" + std::to_string(id) + " SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=2 "
           "SLURM_CPUS_PER_TASK=1 ILLM=" + quote(kIllm) + " bash " + quote(kScripts + "/sweep-array.sbatch") + " " +
           quote(out) + " " + args;
  };
  std::string both = "(";
  both += task(0) + ") & p0=$!; (" + task(1) + ") & p1=$!; wait $p0 && wait $p1";
  const CommandResult tasks = shell(both);
  ASSERT_EQ(tasks.exit_code, 0) << tasks.err;
  ASSERT_TRUE(fs::is_directory(out / "shard-0" / "points"));
  ASSERT_TRUE(fs::is_directory(out / "shard-1" / "points"));
  const CommandResult merge = shell("ILLM=" + quote(kIllm) + " bash " + quote(kScripts + "/sweep-merge.sbatch") + " " + quote(out) +
                          " --bits w8a8,w4a4 --json");
  ASSERT_EQ(merge.exit_code, 0) << merge.err;

  const Json expected = Json::parse(slurp(dir_ / "single" / "results.json"));
  const Json merged = Json::parse(slurp(out / "merged" / "results.json"));
  EXPECT_EQ(Json::parse(merge.out), merged) << "--json prints results.json";
  EXPECT_EQ(merged.at("setup"), expected.at("setup"));
  EXPECT_EQ(merged.at("fp"), expected.at("fp"));
  ASSERT_EQ(points_without_times(merged).size(), 4u);
  EXPECT_EQ(points_without_times(merged), points_without_times(expected));
  EXPECT_TRUE(fs::exists(out / "merged" / "results.csv"));
  EXPECT_TRUE(fs::exists(out / "merged" / "sweep.svg"));

  // Shards of different setups do not merge.
  std::ofstream(recipes / "w8a8.json") << R"({"method": "rtn", "w_bits": 8, "a_bits": 8, "samples": 2, "seq_len": 32})";
  const CommandResult other = shell(quote(kIllm) + " sweep --model " + quote(model_) + " --method rtn --bits w8a8 --clip 8 "
                          "--max-eval-windows 1 --recipe-dir " + quote(recipes) + " -q --threads 1 -o " +
                          quote(dir_ / "other"));
  ASSERT_EQ(other.exit_code, 0) << other.err;
  const CommandResult mixed = shell(quote(kIllm) + " sweep --merge " + quote(out / "shard-0") + " " + quote(dir_ / "other") +
                          " -o " + quote(dir_ / "mixed"));
  EXPECT_EQ(mixed.exit_code, 1) << mixed.err;
  EXPECT_NE(mixed.err.find("another setup"), std::string::npos) << mixed.err;
}

TEST_F(ScaleCli, QuantizeArrayScriptRunsItsLine) {
  fs::create_directories(dir_ / "out");
  std::ofstream(dir_ / "jobs.txt") << "# model, recipe, output\n\n"
                                   << "--model " << quote(model_) << " --recipe " << quote(recipe_) << " -o "
                                   << quote(dir_ / "out" / "first.illm") << " -q --no-eval\n"
                                   << "--model " << quote(model_) << " --recipe " << quote(recipe_) << " -o "
                                   << quote(dir_ / "out" / "second.illm") << " -q --no-eval\n";
  const CommandResult r = shell("SLURM_ARRAY_TASK_ID=1 SLURM_CPUS_PER_TASK=1 ILLM=" + quote(kIllm) + " bash " +
                      quote(kScripts + "/quantize-array.sbatch") + " " + quote(dir_ / "jobs.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "out" / "second.illm"));
  EXPECT_FALSE(fs::exists(dir_ / "out" / "first.illm"));
  EXPECT_NE(shell("SLURM_ARRAY_TASK_ID=5 ILLM=" + quote(kIllm) + " bash " + quote(kScripts + "/quantize-array.sbatch") +
                  " " + quote(dir_ / "jobs.txt")).exit_code, 0);
}

}  // namespace
