// Greedy generation with llama.cpp, printed as token ids: the test compares them with transformers'.
//
//     hfpipe-greedy model.gguf N_PREDICT "prompt text"
//
// prints one JSON line: {"prompt": [ids], "generated": [ids], "text_hex": "<generated text, hex bytes>"}.
// The prompt is tokenized by llama.cpp itself (no BOS/EOS added, special tokens not parsed); generation
// does not stop at an end-of-generation token, so it always yields N_PREDICT ids. Modelled on
// llama.cpp's examples/simple/simple.cpp, for the llama.cpp version the test pins.
#include "llama.h"

#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static void quiet(enum ggml_log_level level, const char * text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static void batch_set_tokens(llama_batch_ext * batch, const llama_token * tokens, int32_t n, llama_pos pos0) {
    llama_batch_ext_clear(batch);
    for (int32_t i = 0; i < n; ++i) {
        const int32_t idx = llama_batch_ext_add_token(batch, 0, tokens[i]);
        const llama_pos pos = pos0 + i;
        llama_batch_ext_set_pos(batch, idx, &pos);
    }
    llama_batch_ext_set_output_logits(batch, n - 1, true);
}

static void print_ids(const char * key, const std::vector<llama_token> & ids) {
    printf("\"%s\": [", key);
    for (size_t i = 0; i < ids.size(); ++i) {
        printf(i ? ", %d" : "%d", ids[i]);
    }
    printf("]");
}

int main(int argc, char ** argv) {
    std::setlocale(LC_NUMERIC, "C");
    if (argc != 4) {
        fprintf(stderr, "usage: %s model.gguf n_predict prompt\n", argv[0]);
        return 2;
    }
    const char * model_path = argv[1];
    const int n_predict = atoi(argv[2]);
    const std::string prompt = argv[3];

    llama_log_set(quiet, nullptr);
    llama_backend_init();

    llama_model_params model_params = llama_model_default_params();
    model_params.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(model_path, model_params);
    if (model == nullptr) {
        fprintf(stderr, "error: llama.cpp could not load %s\n", model_path);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);

    const int n_prompt = -llama_tokenize(vocab, prompt.c_str(), prompt.size(), nullptr, 0, false, false);
    std::vector<llama_token> prompt_ids(n_prompt);
    if (n_prompt <= 0 ||
        llama_tokenize(vocab, prompt.c_str(), prompt.size(), prompt_ids.data(), n_prompt, false, false) < 0) {
        fprintf(stderr, "error: could not tokenize the prompt\n");
        return 1;
    }

    if (n_prompt + n_predict > llama_model_n_ctx_train(model)) {
        fprintf(stderr, "error: %d prompt + %d new tokens exceed the model's context of %d\n", n_prompt,
                n_predict, llama_model_n_ctx_train(model));
        return 1;
    }

    llama_context_params ctx_params = llama_context_default_params();
    ctx_params.n_ctx = n_prompt + n_predict;
    ctx_params.n_batch = n_prompt;
    ctx_params.n_threads = 1;  // tiny models: threads only add synchronisation
    ctx_params.n_threads_batch = 1;
    llama_context * ctx = llama_init_from_model(model, ctx_params);
    if (ctx == nullptr) {
        fprintf(stderr, "error: could not create the llama_context\n");
        return 1;
    }
    llama_sampler * smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    llama_batch_ext * batch = llama_batch_ext_init(ctx);
    batch_set_tokens(batch, prompt_ids.data(), n_prompt, 0);
    int n_pos = n_prompt;
    std::vector<llama_token> generated;
    std::string text;
    while ((int) generated.size() < n_predict) {
        if (llama_process(ctx, LLAMA_PROCESS_TYPE_DECODE, batch)) {
            fprintf(stderr, "error: llama_process failed\n");
            return 1;
        }
        llama_token id = llama_sampler_sample(smpl, ctx, -1);
        generated.push_back(id);
        char buf[256];
        const int n = llama_token_to_piece(vocab, id, buf, sizeof(buf), 0, true);
        if (n < 0) {
            fprintf(stderr, "error: could not turn token %d into text\n", id);
            return 1;
        }
        text.append(buf, n);
        batch_set_tokens(batch, &id, 1, n_pos++);
    }

    printf("{");
    print_ids("prompt", prompt_ids);
    printf(", ");
    print_ids("generated", generated);
    printf(", \"text_hex\": \"");
    for (unsigned char c : text) {
        printf("%02x", c);
    }
    printf("\"}\n");

    llama_batch_ext_free(batch);
    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
