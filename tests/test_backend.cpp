// The device seam: the one backend factory, the peak rates MFU is measured against, and how a device this
// build lacks is refused. The refusals hold only in a build without the CUDA backend; a build with it tests
// the real device instead.
#include "backend/backend.h"
#include "backend/peak.h"
#include "core/check.h"
#include "data/shard.h"
#include "test_util.h"
#include "train/perf.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

using namespace sp;
using sp::test::TempDir;

namespace {

const std::string kTiny = std::string(SOFTPICK_TESTS_DIR) + "/configs/tiny.json";

// The message of the usage Error that make_backend throws for `device`.
std::string factory_error(const std::string& device) {
  try {
    make_backend({device});
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Usage);
    return e.what();
  }
  FAIL("make_backend(\"" << device << "\") made a backend");
  return {};
}

}  // namespace

TEST_CASE("the factory makes the CPU backends and names the devices it knows", "[unit]") {
  CHECK(make_backend({"cpu", 2})->name() == "cpu");
  for (auto [device, dt] : {std::pair{"cpu", DType::F32}, std::pair{"cpu-f64", DType::F64}}) {
    auto be = make_backend({device, 2});
    INFO(device);  // the precision policy on the CPU: one float type for every kind of buffer
    CHECK(be->weight_dtype() == dt);
    CHECK(be->grad_dtype() == dt);
    CHECK(be->activation_dtype() == dt);
    CHECK(be->stat_dtype() == dt);
    CHECK(be->master_dtype() == dt);
  }
  CHECK_THAT(factory_error("tpu"), Catch::Contains("unknown device \"tpu\"") && Catch::Contains("cpu or cuda"));
  CHECK_THAT(factory_error(""), Catch::Contains("unknown device \"\""));
#ifndef SOFTPICK_HAVE_CUDA_BACKEND
  CHECK_THAT(factory_error("cuda"), Catch::Contains("training.device = \"cuda\"") &&
                                        Catch::Contains("built without the CUDA backend") &&
                                        Catch::Contains("-DSOFTPICK_CUDA=ON"));
#endif
}

TEST_CASE("the CPU's peak is its measured fp32 GEMM rate, measured once", "[unit]") {
  auto a = make_backend({"cpu", 2}), b = make_backend({"cpu", 2});
  CHECK(a->peak_flops() > 1e8);  // any CPU this runs on does far more than 0.1 GFLOP/s
  CHECK(a->peak_flops() == b->peak_flops());
  CHECK(a->peak_description() == "CPU peak (measured fp32 GEMM)");
  CHECK_THAT(peak_summary(*a), Catch::StartsWith("CPU peak (measured fp32 GEMM): ") && Catch::EndsWith("GFLOP/s"));
}

TEST_CASE("GPU peaks: dense bf16 by device name, 0 for a device not in the table", "[unit]") {
  CHECK(gpu_peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989e12);
  CHECK(gpu_peak_bf16_flops("NVIDIA H100 PCIe") == 756e12);
  CHECK(gpu_peak_bf16_flops("NVIDIA H200") == 989e12);
  CHECK(gpu_peak_bf16_flops("NVIDIA A100-SXM4-80GB") == 312e12);
  CHECK(gpu_peak_bf16_flops("NVIDIA A100 80GB PCIe") == 312e12);
  CHECK(gpu_peak_bf16_flops("NVIDIA L40S") == 362e12);
  CHECK(gpu_peak_bf16_flops("NVIDIA GeForce RTX 4090") == 165e12);
  CHECK(gpu_peak_bf16_flops("Tesla T4") == 0);
  CHECK(gpu_peak_bf16_flops("NVIDIA L40") == 0);  // not the L40S
  CHECK(gpu_peak_bf16_flops("") == 0);
}

TEST_CASE("MFU is achieved over peak, and n/a when the peak is unknown", "[unit]") {
  CHECK(mfu(25e12, 100e12) == 0.25);
  CHECK(format_mfu(mfu(25e12, 100e12)) == "25.0%");
  CHECK(std::isnan(mfu(25e12, 0)));
  CHECK(format_mfu(mfu(25e12, 0)) == "n/a");
}

#ifndef SOFTPICK_HAVE_CUDA_BACKEND
TEST_CASE("train and bench on cuda stop with exit 2 and say how to get the CUDA backend", "[unit]") {
  TempDir d;
  const std::vector<int32_t> tokens = test::random_tokens(4000, 259, 1);
  write_shard(d / "d.bin", tokens);
  const std::string data = " --data.train_files=" + (d / "d.bin") + " --data.val_files=" + (d / "d.bin");
  auto r = test::run_softpick("train " + kTiny + data + " --training.run_dir=" + (d / "run") +
                              " --training.device=cuda");
  INFO(r.err);
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("built without the CUDA backend") && Catch::Contains("training.device=cpu"));
  CHECK(!std::filesystem::exists(d / "run"));  // refused before the run directory is made

  r = test::run_softpick("bench " + kTiny + " --device=cuda --steps=1 --attention-T=64");
  INFO(r.err);
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("built without the CUDA backend"));
}
#endif

TEST_CASE("the --device flag takes the choices of training.device", "[unit]") {
  auto r = test::run_softpick("bench " + kTiny + " --device=gpu");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("training.device = \"gpu\" is not one of: cpu, cuda"));
}
