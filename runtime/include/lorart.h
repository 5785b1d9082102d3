/* lorart.h: the C API of the lorac runtime. Open a compiled plan
 * (train.bin), bind base weights, run training and evaluation steps, save
 * adapters. Every function returns 0 on success and -1 on failure; the
 * failure's one-line message is then available from lorart_last_error()
 * (per thread). No function aborts on bad input. */
#ifndef LORART_H_
#define LORART_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LORART_API __attribute__((visibility("default")))
#else
#define LORART_API
#endif

typedef struct lorart_session lorart_session;

/* The message of the last failure on this thread ("" after success). */
LORART_API const char* lorart_last_error(void);

/* Opens a plan; num_threads 0 = all hardware threads. NULL on failure. */
LORART_API lorart_session* lorart_open(const char* plan_path, int num_threads);
/* Opens a plan on a device: "cpu", "cuda" or "cuda:N" (GPU 0 or GPU N; fails
 * without that GPU, or when a launched kernel has no CUDA source) or "auto"
 * (GPU 0 when the plan can run there, else the CPU). kernel_cache: the compiled-kernel cache directory,
 * NULL or "" for $XDG_CACHE_HOME/lorac. */
LORART_API lorart_session* lorart_open_device(const char* plan_path, int num_threads,
                                              const char* device, const char* kernel_cache);
/* One line naming the session's device ("cpu (8 threads)", "cuda: NVIDIA
 * H100 ..."); valid until the session is closed. */
LORART_API const char* lorart_device(const lorart_session* session);
LORART_API void lorart_close(lorart_session* session);

/* Binds the base weights from a Hugging Face model directory (safetensors),
 * then initializes adapters as PEFT does from `seed` (lora_A Kaiming-uniform,
 * lora_B zero) and the optimizer state. */
LORART_API int lorart_bind_weights(lorart_session* session, const char* model_dir, uint64_t seed);
/* Loads a PEFT adapter directory (adapter_model.safetensors). */
LORART_API int lorart_load_adapter(lorart_session* session, const char* dir);
/* Writes DIR/adapter_model.safetensors and DIR/adapter_config.json. */
LORART_API int lorart_save_adapter(const lorart_session* session, const char* dir, const char* base_model);

/* The plan's token grid. */
LORART_API int64_t lorart_micro_batch(const lorart_session* session);
LORART_API int64_t lorart_seq_len(const lorart_session* session);

/* One micro-batch, row-major [micro_batch, seq_len]: tokens, positions,
 * segment_ids (may be NULL for unpacked plans), targets and the loss mask
 * (0/1 bytes). Gradients accumulate in the plan's accumulators; returns the
 * summed loss and the number of target tokens. */
LORART_API int lorart_train_step(lorart_session* session, const int32_t* tokens, const int32_t* positions,
                      const int32_t* segment_ids, const int32_t* targets, const uint8_t* loss_mask,
                      uint64_t step_seed, double* loss_sum, double* count);
/* Applies the accumulated gradients: AdamW at learning rate `lr`, step `step`
 * (1-based), normalised by `token_count` (the sum of the micro-batches'
 * counts); resets the accumulators. Returns the global gradient norm. */
LORART_API int lorart_optimizer_step(lorart_session* session, float lr, int64_t step, double token_count,
                          double* grad_norm);
/* The loss of one micro-batch without dropout or gradients. */
LORART_API int lorart_eval_step(lorart_session* session, const int32_t* tokens, const int32_t* positions,
                     const int32_t* segment_ids, const int32_t* targets,
                     const uint8_t* loss_mask, double* loss_sum, double* count);

#ifdef __cplusplus
}
#endif

#endif /* LORART_H_ */
