// The peak rates MFU is measured against (FLOPs per token as in docs/architecture.md), in FLOP/s, one source per kind of device:
//   * a CPU has no published figure that fits a given machine and thread count, so its fp32 GEMM rate is
//     measured: the best sgemm rate of 1024^3 and 2048^3 products, about 0.6 s, once per process;
//   * a GPU's is NVIDIA's published dense (not 2:4 sparse) bf16 tensor-core peak, looked up by name.
#pragma once

#include <string>

namespace sp {

// Measured on the first call with the current OpenMP/BLAS thread count, then cached.
double cpu_peak_fp32_flops();

// By substring of the CUDA device name ("NVIDIA H100 80GB HBM3"); 0 for a device not in the table.
double gpu_peak_bf16_flops(const std::string& device_name);

}  // namespace sp
