# Writes OUT, a C++ source defining sp::kHfModelingFiles: the name and text of each file of FILES (a
# |-separated list), so `softpick export` writes the transformers modeling code from the binary alone.
# Run by a custom command (cmake -DOUT=... -DFILES=... -P embed_text_files.cmake).
set(body "// Generated from python/softpick_hf by cmake/embed_text_files.cmake; do not edit.\n")
string(APPEND body "#include \"interop/modeling_files.h\"\n\nnamespace sp {\n\nconst std::vector<EmbeddedFile> kHfModelingFiles = {\n")
string(REPLACE "|" ";" FILES "${FILES}")
foreach(path IN LISTS FILES)
  get_filename_component(name "${path}" NAME)
  file(READ "${path}" text)
  string(FIND "${text}" ")softpick_py\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${path} contains the raw-string delimiter )softpick_py\"")
  endif()
  string(APPEND body "    {\"${name}\", R\"softpick_py(${text})softpick_py\"},\n")
endforeach()
string(APPEND body "};\n\n}  // namespace sp\n")
file(WRITE "${OUT}.tmp" "${body}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
