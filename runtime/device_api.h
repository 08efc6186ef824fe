// The CUDA driver and OpenCL entry points that iabn (and its tests and GPU benchmark) call
// directly, loaded at run time instead of linked: a program built with iabn's GPU kernels starts,
// and runs on the CPU, on a machine without a GPU driver. Loading with RTLD_GLOBAL also lets the
// Halide runtime inside iabn find the same library. Each table loads once per process; a missing
// library or entry point is an iabn::Error that says which.
#pragma once

#include <cstddef>
#include <cstdint>

namespace iabn::detail {

// CUDA driver API (CUresult is an int, 0 is success; CUdeviceptr a 64-bit integer).
struct CudaApi {
    using Result = int;
    using Ptr = unsigned long long;
    Result (*init)(unsigned flags);
    Result (*get_error_string)(Result error, const char** text);
    Result (*device_get_count)(int* count);
    Result (*device_get)(int* device, int ordinal);
    Result (*device_get_name)(char* name, int length, int device);
    Result (*device_get_attribute)(int* value, int attribute, int device);
    Result (*primary_ctx_retain)(void** context, int device);
    Result (*ctx_get_current)(void** context);
    Result (*ctx_set_current)(void* context);
    Result (*ctx_get_device)(int* device);
    Result (*mem_alloc)(Ptr* ptr, size_t bytes);
    Result (*mem_free)(Ptr ptr);
    Result (*mem_alloc_async)(Ptr* ptr, size_t bytes, void* stream);
    Result (*mem_free_async)(Ptr ptr, void* stream);
    Result (*memset_d32_async)(Ptr ptr, unsigned value, size_t count, void* stream);
    Result (*memset_d2d32_async)(Ptr ptr, size_t pitch, unsigned value, size_t width, size_t height, void* stream);
    Result (*memcpy_htod)(Ptr dst, const void* src, size_t bytes);
    Result (*memcpy_dtoh)(void* dst, Ptr src, size_t bytes);
    Result (*memcpy_dtoh_async)(void* dst, Ptr src, size_t bytes, void* stream);
    Result (*memcpy_dtod_async)(Ptr dst, Ptr src, size_t bytes, void* stream);
    Result (*stream_create)(void** stream, unsigned flags);
    Result (*stream_destroy)(void* stream);
    Result (*stream_synchronize)(void* stream);
    Result (*event_create)(void** event, unsigned flags);
    Result (*event_destroy)(void* event);
    Result (*event_record)(void* event, void* stream);
    Result (*event_synchronize)(void* event);
    Result (*event_elapsed_time)(float* ms, void* start, void* end);
    Result (*pointer_get_attribute)(void* data, int attribute, Ptr ptr);
};
const CudaApi& cuda_api();  // loads libcuda.so.1; throws iabn::Error if it cannot

// The driver's CUDA graph entry points, which iabn never calls (a caller captures iabn's calls
// into its own graphs): the GPU benchmark's capture and replay. A table of their own, so that a
// driver without them (before CUDA 11.4) still runs iabn.
struct CudaGraphApi {
    using Result = int;
    Result (*stream_begin_capture)(void* stream, int mode);
    Result (*stream_end_capture)(void* stream, void** graph);
    Result (*graph_instantiate)(void** graph_exec, void* graph, unsigned long long flags);
    Result (*graph_launch)(void* graph_exec, void* stream);
    Result (*graph_exec_destroy)(void* graph_exec);
    Result (*graph_destroy)(void* graph);
};
const CudaGraphApi& cuda_graph_api();  // throws iabn::Error where the driver lacks them
// Throws iabn::Error "CUDA: <what> failed: <the driver's text>" when `result` is not 0.
void cuda_check(int result, const char* what);

// OpenCL 1.2 (cl_int is an int32, 0 is CL_SUCCESS; the objects are opaque pointers).
struct OpenClApi {
    using Int = int32_t;
    using Uint = uint32_t;
    using Handle = void*;  // cl_platform_id, cl_device_id, cl_context, cl_command_queue, cl_mem
    Int (*get_platform_ids)(Uint count, Handle* platforms, Uint* found);
    Int (*get_platform_info)(Handle platform, Uint name, size_t size, void* value, size_t* size_ret);
    Int (*get_device_ids)(Handle platform, uint64_t type, Uint count, Handle* devices, Uint* found);
    Int (*get_device_info)(Handle device, Uint name, size_t size, void* value, size_t* size_ret);
    Handle (*create_context)(const intptr_t* properties, Uint count, const Handle* devices, void* notify,
                             void* user_data, Int* error);
    Int (*retain_context)(Handle context);
    Int (*release_context)(Handle context);
    Handle (*create_command_queue)(Handle context, Handle device, uint64_t properties, Int* error);
    Int (*release_command_queue)(Handle queue);
    Int (*get_command_queue_info)(Handle queue, Uint name, size_t size, void* value, size_t* size_ret);
    Int (*get_mem_object_info)(Handle mem, Uint name, size_t size, void* value, size_t* size_ret);
    Handle (*create_buffer)(Handle context, uint64_t flags, size_t bytes, void* host, Int* error);
    Int (*release_mem_object)(Handle mem);
    Int (*enqueue_fill_buffer)(Handle queue, Handle mem, const void* pattern, size_t pattern_size, size_t offset,
                               size_t bytes, Uint wait_count, const Handle* wait, Handle* event);
    Int (*enqueue_read_buffer)(Handle queue, Handle mem, Uint blocking, size_t offset, size_t bytes, void* host,
                               Uint wait_count, const Handle* wait, Handle* event);
    Int (*enqueue_write_buffer)(Handle queue, Handle mem, Uint blocking, size_t offset, size_t bytes,
                                const void* host, Uint wait_count, const Handle* wait, Handle* event);
    Int (*enqueue_copy_buffer)(Handle queue, Handle src, Handle dst, size_t src_offset, size_t dst_offset,
                               size_t bytes, Uint wait_count, const Handle* wait, Handle* event);
    Int (*flush)(Handle queue);
    Int (*finish)(Handle queue);
};
const OpenClApi& opencl_api();  // loads libOpenCL.so.1 (the ICD loader); throws iabn::Error if it cannot
// Throws iabn::Error "OpenCL: <what> failed: error <code>" when `result` is not 0.
void opencl_check(int result, const char* what);

}  // namespace iabn::detail
