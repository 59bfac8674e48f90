# The fuzz targets (fuzz/targets/<name>.cpp) and the torch-free sources of src/ they need (paths below src/); read by
# fuzz/CMakeLists.txt (libFuzzer binaries), tests/CMakeLists.txt (the replay driver) and
# scripts/fuzz.sh (the line below, one line).
set(MOPS_FUZZ_TARGETS safetensors llama2c_header hf_config jsonl_records sni_task ini_config)
set(MOPS_FUZZ_SRC_FILES base/errors.cpp model/model_config.cpp io/safetensors_layout.cpp io/llama2c_header.cpp
    io/hf_config.cpp data/dataset_loaders.cpp cli/cli_options.cpp)
# Their folders, the include directories of the fuzz builds.
set(MOPS_FUZZ_SRC_DIRS base model io data cli)
