/* illm_rt: command-line front end of the C99 runtime for hosted systems (Linux, macOS, a Raspberry Pi, ...).
 * Reads model.bin into memory, runs a prompt (token ids, or text when the file carries a tokenizer) and prints the
 * greedy continuation: streamed text or ids, or one JSON object with --json. Integer-only like the core: speeds are
 * computed and printed with integer arithmetic.
 *
 *   illm_rt model.bin --prompt-ids 1,2,3 --max-tokens 32
 *   illm_rt model.bin --prompt "In the beginning" --json --logits */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 199309L
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "illm_rt.h"

#define PROGRAM "illm_rt"

static void usage(FILE* out) {
  fprintf(out,
          "usage: " PROGRAM " MODEL.bin [--prompt TEXT | --prompt-ids 1,2,3] [--max-tokens N] [--context N] [--json]\n"
          "       [--logits] [--info]\n"
          "\n"
          "Runs an illm model exported by `illm export --format c99` with the dependency-free C99 integer runtime and\n"
          "prints the greedy continuation (integer argmax, ties -> lowest id), as `illm generate` does.\n"
          "\n"
          "  --prompt TEXT       prompt text (needs a tokenizer in the file; BOS is prepended)\n"
          "  --prompt-ids LIST   prompt as token ids, e.g. 1,2,3 (default: BOS only)\n"
          "  --max-tokens N      tokens to generate (default 48)\n"
          "  --context N         positions of the KV cache (default: the file's context)\n"
          "  --json              print one JSON object (ids, text, speeds) instead of streaming\n"
          "  --logits            with --json: add the last logits row (int64 values and their dyadic scale)\n"
          "  --info              print the model's shape, settings and arena size, and exit\n"
          "  --help              this text\n"
          "\n"
          "Errors: one line on stderr, exit code 1. Speeds go to stderr (or into the JSON object).\n");
}

static int die(const char* what, const char* detail) {
  fprintf(stderr, PROGRAM ": %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  return 1;
}

static int64_t now_microseconds(void) {
#if defined(CLOCK_MONOTONIC)
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + (int64_t)(ts.tv_nsec / 1000);
#else
  return (int64_t)clock() * 1000000 / CLOCKS_PER_SEC;
#endif
}

/* Reads the whole file; NULL (with a message printed) on failure. */
static unsigned char* read_file(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  unsigned char* data;
  long length;
  if (!f) {
    fprintf(stderr, PROGRAM ": %s: cannot open: %s\n", path, strerror(errno));
    return NULL;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (length = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fprintf(stderr, PROGRAM ": %s: cannot determine the file size\n", path);
    fclose(f);
    return NULL;
  }
  data = (unsigned char*)malloc(length > 0 ? (size_t)length : 1);
  if (!data || fread(data, 1, (size_t)length, f) != (size_t)length) {
    fprintf(stderr, PROGRAM ": %s: read error\n", path);
    free(data);
    fclose(f);
    return NULL;
  }
  fclose(f);
  *size = (size_t)length;
  return data;
}

/* "1, 2,3" -> ids; 0 on success. */
static int parse_ids(const char* text, int32_t* ids, int32_t capacity, int32_t* count) {
  const char* p = text;
  *count = 0;
  for (;;) {
    char* end;
    long long value;
    while (*p == ' ' || *p == '\t') ++p;
    errno = 0;
    value = strtoll(p, &end, 10);
    if (end == p || errno == ERANGE || value < INT32_MIN || value > INT32_MAX) return 1;
    if (*count >= capacity) return 2;
    ids[(*count)++] = (int32_t)value;
    p = end;
    while (*p == ' ' || *p == '\t') ++p;
    if (*p == '\0') return 0;
    if (*p != ',') return 1;
    ++p;
  }
}

static int parse_int(const char* text, long lo, long hi, long* value) {
  char* end;
  errno = 0;
  *value = strtol(text, &end, 10);
  return end != text && *end == '\0' && errno != ERANGE && *value >= lo && *value <= hi;
}

static void print_json_string(const char* s, size_t n) {
  size_t i;
  putchar('"');
  for (i = 0; i < n; ++i) {
    const unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      putchar('\\');
      putchar(c);
    } else if (c < 0x20) {
      printf("\\u%04x", c);
    } else {
      putchar(c);
    }
  }
  putchar('"');
}

static void print_ids(const char* name, const int32_t* ids, int32_t n) {
  int32_t i;
  printf("\"%s\":[", name);
  for (i = 0; i < n; ++i) printf(i ? ",%ld" : "%ld", (long)ids[i]);
  printf("]");
}

/* tokens per second with one decimal, integer arithmetic: "123.4" */
static void format_rate(char* out, size_t size, int64_t tokens, int64_t microseconds) {
  int64_t tenths = microseconds > 0 ? tokens * 10000000 / microseconds : 0;
  snprintf(out, size, "%lld.%lld", (long long)(tenths / 10), (long long)(tenths % 10));
}

/* Decodes ids into a growing buffer; returns NULL (message printed) on failure. */
static char* decode_all(const illm_rt_model* model, const int32_t* ids, int32_t n, size_t* length) {
  size_t capacity = 64 + 32 * (size_t)n;
  for (;;) {
    illm_rt_error err;
    char* text = (char*)malloc(capacity);
    int status;
    if (!text) return NULL;
    status = illm_rt_decode(model, ids, n, text, capacity, length, &err);
    if (status == ILLM_RT_OK) return text;
    free(text);
    if (status != ILLM_RT_E_BUFFER) {
      fprintf(stderr, PROGRAM ": %s\n", err.message);
      return NULL;
    }
    capacity *= 2;
  }
}

typedef struct {
  const illm_rt_model* model;
  int stream;
  int64_t first_token_us;
  int32_t* generated;
  int32_t count;
  size_t printed; /* bytes of decoded text already printed */
} stream_state;

static int on_token(void* user, int32_t id) {
  stream_state* s = (stream_state*)user;
  if (s->count == 0) s->first_token_us = now_microseconds();
  s->generated[s->count++] = id;
  if (!s->stream) return 0;
  if (s->model->has_tokenizer) {
    size_t length;
    /* While the last id is a BYTE piece the text may end inside a character: wait for the next piece. */
    char* text = illm_rt_token_is_byte(s->model, id) ? NULL : decode_all(s->model, s->generated, s->count, &length);
    if (text && length > s->printed) {
      fwrite(text + s->printed, 1, length - s->printed, stdout);
      s->printed = length;
    }
    free(text);
  } else {
    printf(s->count == 1 ? "%ld" : " %ld", (long)id);
  }
  fflush(stdout);
  return 0;
}

static void print_info(const illm_rt_model* m, const char* path) {
  const illm_rt_shape* s = &m->shape;
  const illm_rt_settings* st = &m->settings;
  printf("file      %s (%llu bytes, format version %u)\n", path, (unsigned long long)m->size, ILLM_RT_FORMAT_VERSION);
  printf("shape     %d layers, hidden %d, intermediate %d, heads %d (kv %d) x %d, vocab %d, max positions %d, bos %d, eos %d\n",
         s->n_layers, s->hidden, s->intermediate, s->n_heads, s->n_kv_heads, s->head_dim, s->vocab, s->max_positions,
         s->bos_id, s->eos_id);
  printf("integer   W%d A%d (Q/K/V %d), mantissa %d, softmax input %d, probabilities %d, sigmoid %d, SwiGLU input %d, norm fraction %d, head %d (input %d), embedding %d\n",
         st->w_bits, st->a_bits, m->qkv_bits, st->mantissa_bits, st->softmax_in_bits, st->prob_bits, st->sigmoid_bits,
         st->swiglu_in_bits, st->norm_frac_bits, st->head_bits, m->head_input_bits, st->embed_bits);
  printf("tokenizer %s\n", m->has_tokenizer ? (m->tokenizer_can_encode ? "yes (encode and decode)" : "decode only") : "none");
  printf("arena     %llu bytes for the file's context of %d positions\n", (unsigned long long)m->header_arena_bytes,
         m->default_context);
}

int main(int argc, char** argv) {
  const char* path = NULL;
  const char* prompt_text = NULL;
  const char* prompt_ids_text = NULL;
  long max_tokens = 48, context = 0;
  int json = 0, logits = 0, info = 0, i, status;
  unsigned char* data;
  size_t size, arena_size;
  void* arena;
  illm_rt_model model;
  illm_rt_session session;
  illm_rt_error err;
  illm_rt_generation result;
  int32_t* prompt;
  int32_t n_prompt = 0, prompt_capacity;
  stream_state stream;
  int64_t start_us, end_us;

  for (i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const int has_value = i + 1 < argc;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--json") == 0) {
      json = 1;
    } else if (strcmp(a, "--logits") == 0) {
      logits = 1;
    } else if (strcmp(a, "--info") == 0) {
      info = 1;
    } else if (strcmp(a, "--prompt") == 0 && has_value) {
      prompt_text = argv[++i];
    } else if (strcmp(a, "--prompt-ids") == 0 && has_value) {
      prompt_ids_text = argv[++i];
    } else if (strcmp(a, "--max-tokens") == 0 && has_value) {
      if (!parse_int(argv[++i], 0, 1L << 24, &max_tokens)) return die("--max-tokens must be an integer in [0, 2^24]", NULL);
    } else if (strcmp(a, "--context") == 0 && has_value) {
      if (!parse_int(argv[++i], 1, 1L << 24, &context)) return die("--context must be an integer in [1, 2^24]", NULL);
    } else if (a[0] == '-') {
      fprintf(stderr, PROGRAM ": unknown option or missing value: %s (see --help)\n", a);
      return 1;
    } else if (!path) {
      path = a;
    } else {
      return die("more than one model file given", a);
    }
  }
  if (!path) {
    usage(stderr);
    return 1;
  }
  if (prompt_text && prompt_ids_text) return die("give either --prompt or --prompt-ids, not both", NULL);
  if (prompt_text && prompt_text[0] == '\0') return die("--prompt is empty", NULL);
  if (logits && !json) return die("--logits needs --json", NULL);

  data = read_file(path, &size);
  if (!data) return 1;
  if (illm_rt_load(&model, data, size, &err) != ILLM_RT_OK) {
    fprintf(stderr, PROGRAM ": %s: %s\n", path, err.message);
    free(data);
    return 1;
  }
  if (info) {
    print_info(&model, path);
    free(data);
    return 0;
  }

  prompt_capacity = prompt_text ? (int32_t)(strlen(prompt_text) * 4 + 8) : (prompt_ids_text ? (int32_t)strlen(prompt_ids_text) / 2 + 2 : 1);
  prompt = (int32_t*)malloc(sizeof(int32_t) * (size_t)prompt_capacity);
  if (!prompt) return die("out of memory", NULL);
  if (prompt_text) {
    const size_t work_size = illm_rt_encode_work_size(strlen(prompt_text));
    void* work = malloc(work_size ? work_size : 1);
    if (!work) return die("out of memory", NULL);
    status = illm_rt_encode(&model, prompt_text, strlen(prompt_text), 1, prompt, prompt_capacity, &n_prompt, work,
                            work_size, &err);
    free(work);
    if (status != ILLM_RT_OK) {
      fprintf(stderr, PROGRAM ": %s: %s\n", path, err.message);
      return 1;
    }
  } else if (prompt_ids_text) {
    if (parse_ids(prompt_ids_text, prompt, prompt_capacity, &n_prompt) != 0) {
      fprintf(stderr, PROGRAM ": --prompt-ids \"%s\": expected comma-separated integer token ids, e.g. 1,2,3\n", prompt_ids_text);
      return 1;
    }
  } else {
    prompt[0] = model.shape.bos_id; /* no prompt: continue from the beginning-of-sequence token */
    n_prompt = 1;
  }

  arena_size = illm_rt_arena_size(&model, (int32_t)context);
  if (arena_size == 0) {
    fprintf(stderr, PROGRAM ": %s: --context %ld outside [1, max_positions = %d]\n", path, context, model.shape.max_positions);
    return 1;
  }
  arena = malloc(arena_size);
  if (!arena) return die("out of memory for the arena", NULL);
  if (illm_rt_session_init(&session, &model, arena, arena_size, (int32_t)context, &err) != ILLM_RT_OK) {
    fprintf(stderr, PROGRAM ": %s: %s\n", path, err.message);
    return 1;
  }

  stream.model = &model;
  stream.stream = !json;
  stream.first_token_us = 0;
  stream.count = 0;
  stream.printed = 0;
  stream.generated = (int32_t*)malloc(sizeof(int32_t) * (size_t)(max_tokens > 0 ? max_tokens : 1));
  if (!stream.generated) return die("out of memory", NULL);
  start_us = now_microseconds();
  status = illm_rt_generate(&session, prompt, n_prompt, (int32_t)max_tokens, stream.generated, &result, on_token,
                            &stream, &err);
  end_us = now_microseconds();
  if (status != ILLM_RT_OK) {
    fprintf(stderr, PROGRAM ": %s: %s\n", path, err.message);
    return 1;
  }
  {
    /* Prefill ends when the first id is known; the decode calls are one per id after it (the last one only when
     * EOS ended the run), as `illm generate` counts them. */
    const int64_t first = result.generated > 0 ? stream.first_token_us : end_us;
    const int64_t prefill_us = first - start_us, decode_us = end_us - first;
    const int64_t decode_calls = result.stopped_at_eos ? result.generated : (result.generated > 0 ? result.generated - 1 : 0);
    char prefill_rate[32], decode_rate[32];
    format_rate(prefill_rate, sizeof prefill_rate, n_prompt, prefill_us);
    format_rate(decode_rate, sizeof decode_rate, decode_calls, decode_us);
    if (json) {
      printf("{\"model_file\":");
      print_json_string(path, strlen(path));
      printf(",");
      print_ids("prompt_ids", prompt, n_prompt);
      printf(",");
      print_ids("ids", stream.generated, result.generated);
      if (model.has_tokenizer) {
        size_t length;
        char* text = decode_all(&model, stream.generated, result.generated, &length);
        if (!text) return 1;
        printf(",\"text\":");
        print_json_string(text, length);
        free(text);
      }
      printf(",\"prompt_tokens\":%ld,\"generated_tokens\":%ld,\"stopped_at_eos\":%s,\"context\":%ld,\"arena_bytes\":%lu",
             (long)n_prompt, (long)result.generated, result.stopped_at_eos ? "true" : "false", (long)session.context,
             (unsigned long)arena_size);
      printf(",\"prefill_microseconds\":%lld,\"decode_microseconds\":%lld,\"prefill_tokens_per_second\":%s,"
             "\"decode_tokens_per_second\":%s",
             (long long)prefill_us, (long long)decode_us, prefill_rate, decode_rate);
      if (logits) {
        int32_t v;
        printf(",\"logits\":{\"position\":%ld,\"scale_m\":%lld,\"scale_k\":%ld,\"values\":[", (long)(session.position - 1),
               (long long)session.logits.scale.m, (long)session.logits.scale.k);
        for (v = 0; v < session.logits.vocab; ++v) printf(v ? ",%lld" : "%lld", (long long)session.logits.values[v]);
        printf("]}");
      }
      printf("}\n");
    } else {
      printf("\n");
      fprintf(stderr, "prompt tokens %ld, generated tokens %ld%s; prefill %s tokens/s, decode %s tokens/s\n",
              (long)n_prompt, (long)result.generated, result.stopped_at_eos ? " (stopped at EOS)" : "", prefill_rate,
              decode_rate);
    }
  }
  fflush(stdout);
  free(stream.generated);
  free(arena);
  free(prompt);
  free(data);
  return 0;
}
