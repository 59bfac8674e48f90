# The fuzz targets (fuzz/targets/<name>.cpp) and the torch-free sources of src/ they need; read by
# fuzz/CMakeLists.txt (libFuzzer binaries), tests/CMakeLists.txt (the replay driver) and
# scripts/fuzz.sh (the line below, one line).
set(MOPS_FUZZ_TARGETS safetensors llama2c_header hf_config jsonl_records sni_task ini_config)
set(MOPS_FUZZ_SRC_FILES errors.cpp model_config.cpp safetensors_layout.cpp llama2c_header.cpp hf_config.cpp
    dataset_loaders.cpp cli_options.cpp)
