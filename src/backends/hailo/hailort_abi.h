/*
 * hailort_abi.h - the part of HailoRT's C API (libhailort 4.21 - 4.23) that
 * vigil calls, declared here so that vigil builds where HailoRT is absent
 * and opens the library with dlopen at run time (hailort_lib.c).
 *
 * Written from hailo-ai/hailort, hailort/libhailort/include/hailo/hailort.h
 * at tags v4.21.0, v4.22.0 and v4.23.0 (the three headers are byte for byte
 * the same), keeping the header's names, so that a reader can hold the two
 * side by side.  Only what vigil passes across the boundary is declared;
 * members of a union vigil never reads are kept as bytes of the same size
 * and alignment.  Earlier 4.x releases laid some of these structures out
 * differently (hailo_nms_shape_t had 2 or 3 members up to 4.19 and a union in
 * 4.20, which moves hailo_vstream_info_t.quant_info), which is why
 * hailort_lib.c refuses them.  tests/unit/test_hailort_abi.c pins every size
 * and offset.
 *
 * Every enum is a 4-byte int on the ABI (each has a HAILO_MAX_ENUM =
 * INT_MAX member), as our enums are.
 */
#ifndef VIGIL_BACKENDS_HAILO_HAILORT_ABI_H
#define VIGIL_BACKENDS_HAILO_HAILORT_ABI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HAILO_MAX_ENUM (INT_MAX)
#define HAILO_INFINITE (UINT32_MAX)
#define HAILO_MAX_NAME_SIZE (128)
#define HAILO_MAX_STREAM_NAME_SIZE (HAILO_MAX_NAME_SIZE)
#define HAILO_MAX_BOARD_NAME_LENGTH (32)
#define HAILO_MAX_DEVICE_ID_LENGTH (32)
#define HAILO_MAX_SERIAL_NUMBER_LENGTH (16)
#define HAILO_MAX_PART_NUMBER_LENGTH (16)
#define HAILO_MAX_PRODUCT_NAME_LENGTH (42)
#define HAILO_MAX_STREAMS_COUNT (40)
#define HAILO_MAX_NETWORK_GROUPS (8)
#define HAILO_MAX_NETWORK_GROUP_NAME_SIZE (HAILO_MAX_NAME_SIZE)
#define HAILO_MAX_NETWORK_NAME_SIZE (HAILO_MAX_NETWORK_GROUP_NAME_SIZE + 1 + HAILO_MAX_NAME_SIZE)
#define HAILO_MAX_NETWORKS_IN_NETWORK_GROUP (8)
#define HAILO_DEFAULT_VSTREAM_TIMEOUT_MS (10000)
#define HAILO_UNIQUE_VDEVICE_GROUP_ID ("UNIQUE")
#define HAILO_DEFAULT_VDEVICE_GROUP_ID HAILO_UNIQUE_VDEVICE_GROUP_ID
#define HAILO_SCHEDULER_PRIORITY_NORMAL (16)
#define HAILO_SCHEDULER_PRIORITY_MAX (31)
#define HAILO_SCHEDULER_PRIORITY_MIN (0)

typedef float float32_t;

/* The status codes vigil tells apart; every other one is passed on by number. */
typedef enum {
    HAILO_SUCCESS = 0,
    HAILO_INVALID_ARGUMENT = 2,
    HAILO_OUT_OF_HOST_MEMORY = 3,
    HAILO_TIMEOUT = 4,
    HAILO_INSUFFICIENT_BUFFER = 5,
    HAILO_INVALID_OPERATION = 6,
    HAILO_NOT_IMPLEMENTED = 7,
    HAILO_INTERNAL_FAILURE = 8,
    HAILO_OPEN_FILE_FAILURE = 13,
    HAILO_INVALID_HEF = 26,
    HAILO_NOT_FOUND = 61,
    HAILO_COMMUNICATION_CLOSED = 62,
    HAILO_STREAM_ABORT = 63,
    HAILO_DRIVER_NOT_INSTALLED = 64,
    HAILO_NOT_AVAILABLE = 65,
    HAILO_DEVICE_IN_USE = 73,
    HAILO_OUT_OF_PHYSICAL_DEVICES = 74,
    HAILO_RPC_FAILED = 77,
    HAILO_DRIVER_TIMEOUT = 87,
    HAILO_HEF_FILE_CORRUPTED = 91,
    HAILO_HEF_NOT_SUPPORTED = 92,
    HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE = 93,
    HAILO_STATUS_MAX_ENUM = HAILO_MAX_ENUM
} hailo_status;

typedef struct {
    uint32_t major;
    uint32_t minor;
    uint32_t revision;
} hailo_version_t;

typedef struct _hailo_device *hailo_device;
typedef struct _hailo_vdevice *hailo_vdevice;
typedef struct _hailo_hef *hailo_hef;
typedef struct _hailo_configured_network_group *hailo_configured_network_group;
typedef struct _hailo_input_vstream *hailo_input_vstream;
typedef struct _hailo_output_vstream *hailo_output_vstream;

typedef enum hailo_dvm_options_e {
    HAILO_DVM_OPTIONS_VDD_CORE = 0,
    /* ... VDD_IO, MIPI_AVDD, MIPI_AVDD_H, USB_AVDD_IO, VDD_TOP, USB_AVDD_IO_HV, AVDD_H, SDIO_VDD_IO ... */
    HAILO_DVM_OPTIONS_OVERCURRENT_PROTECTION = 9,
    HAILO_DVM_OPTIONS_AUTO = INT_MAX, /* the board's default rail */
} hailo_dvm_options_t;

typedef enum hailo_power_measurement_types_e {
    HAILO_POWER_MEASUREMENT_TYPES__SHUNT_VOLTAGE = 0,
    HAILO_POWER_MEASUREMENT_TYPES__BUS_VOLTAGE,
    HAILO_POWER_MEASUREMENT_TYPES__POWER, /* W */
    HAILO_POWER_MEASUREMENT_TYPES__CURRENT,
    HAILO_POWER_MEASUREMENT_TYPES__AUTO = INT_MAX,
} hailo_power_measurement_types_t;

typedef struct {
    char id[HAILO_MAX_DEVICE_ID_LENGTH];
} hailo_device_id_t;

typedef enum hailo_scheduling_algorithm_e {
    HAILO_SCHEDULING_ALGORITHM_NONE = 0,
    HAILO_SCHEDULING_ALGORITHM_ROUND_ROBIN,
    HAILO_SCHEDULING_ALGORITHM_MAX_ENUM = HAILO_MAX_ENUM
} hailo_scheduling_algorithm_t;

typedef struct {
    uint32_t device_count;
    hailo_device_id_t *device_ids; /* NULL: any free device */
    hailo_scheduling_algorithm_t scheduling_algorithm;
    const char *group_id;
    bool multi_process_service; /* create the vdevice in the hailort service (several processes, one card) */
} hailo_vdevice_params_t;

typedef enum hailo_device_architecture_e {
    HAILO_ARCH_HAILO8_A0 = 0,
    HAILO_ARCH_HAILO8,
    HAILO_ARCH_HAILO8L,
    HAILO_ARCH_HAILO15H,
    HAILO_ARCH_HAILO15L,
    HAILO_ARCH_HAILO15M,
    HAILO_ARCH_HAILO10H,
    HAILO_ARCH_MARS,
    HAILO_ARCH_MAX_ENUM = HAILO_MAX_ENUM
} hailo_device_architecture_t;

typedef struct {
    uint32_t major;
    uint32_t minor;
    uint32_t revision;
} hailo_firmware_version_t;

typedef struct {
    uint32_t protocol_version;
    hailo_firmware_version_t fw_version;
    uint32_t logger_version;
    uint8_t board_name_length;
    char board_name[HAILO_MAX_BOARD_NAME_LENGTH];
    bool is_release;
    bool extended_context_switch_buffer;
    hailo_device_architecture_t device_architecture;
    uint8_t serial_number_length;
    char serial_number[HAILO_MAX_SERIAL_NUMBER_LENGTH];
    uint8_t part_number_length;
    char part_number[HAILO_MAX_PART_NUMBER_LENGTH];
    uint8_t product_name_length;
    char product_name[HAILO_MAX_PRODUCT_NAME_LENGTH];
} hailo_device_identity_t;

typedef struct {
    float32_t ts0_temperature; /* Celsius */
    float32_t ts1_temperature;
    uint16_t sample_count;
} hailo_chip_temperature_info_t;

typedef enum {
    HAILO_FORMAT_TYPE_AUTO = 0,
    HAILO_FORMAT_TYPE_UINT8 = 1,
    HAILO_FORMAT_TYPE_UINT16 = 2,
    HAILO_FORMAT_TYPE_FLOAT32 = 3,
    HAILO_FORMAT_TYPE_MAX_ENUM = HAILO_MAX_ENUM
} hailo_format_type_t;

typedef enum {
    HAILO_FORMAT_ORDER_AUTO = 0,
    HAILO_FORMAT_ORDER_NHWC = 1,
    HAILO_FORMAT_ORDER_NHCW = 2,
    HAILO_FORMAT_ORDER_FCR = 3,
    HAILO_FORMAT_ORDER_F8CR = 4,
    HAILO_FORMAT_ORDER_NHW = 5,
    HAILO_FORMAT_ORDER_NC = 6,
    HAILO_FORMAT_ORDER_HAILO_NMS = 9, /* deprecated name of the by-class host layout */
    HAILO_FORMAT_ORDER_NCHW = 11,
    HAILO_FORMAT_ORDER_HAILO_NMS_ON_CHIP = 21,
    /* Host side, for each class: packed { float32_t bbox_count;
     * hailo_bbox_float32_t bbox[bbox_count]; }, at most max_bboxes_per_class. */
    HAILO_FORMAT_ORDER_HAILO_NMS_BY_CLASS = 22,
    HAILO_FORMAT_ORDER_HAILO_NMS_BY_SCORE = 23,
    HAILO_FORMAT_ORDER_MAX_ENUM = HAILO_MAX_ENUM
} hailo_format_order_t;

typedef enum {
    HAILO_FORMAT_FLAGS_NONE = 0,
    HAILO_FORMAT_FLAGS_QUANTIZED = 1 << 0, /* deprecated, ignored */
    HAILO_FORMAT_FLAGS_TRANSPOSED = 1 << 1,
    HAILO_FORMAT_FLAGS_MAX_ENUM = HAILO_MAX_ENUM
} hailo_format_flags_t;

typedef struct {
    hailo_format_type_t type;
    hailo_format_order_t order;
    hailo_format_flags_t flags;
} hailo_format_t;

typedef enum {
    HAILO_H2D_STREAM = 0,
    HAILO_D2H_STREAM = 1,
    HAILO_STREAM_DIRECTION_MAX_ENUM = HAILO_MAX_ENUM
} hailo_stream_direction_t;

/* float = (quantized - qp_zp) * qp_scale */
typedef struct {
    float32_t qp_zp;
    float32_t qp_scale;
    float32_t limvals_min;
    float32_t limvals_max;
} hailo_quant_info_t;

/* hailo_stream_parameters_t: vigil leaves the interface-specific union to
 * hailo_init_configure_params_by_vdevice; its largest member
 * (hailo_mipi_input_stream_params_t) is 68 bytes, 4-aligned. */
typedef struct {
    int32_t stream_interface; /* hailo_stream_interface_t */
    hailo_stream_direction_t direction;
    int32_t flags; /* hailo_stream_flags_t */
    union {
        uint32_t align;
        uint8_t bytes[68];
    } interface_params;
} hailo_stream_parameters_t;

typedef struct {
    char name[HAILO_MAX_STREAM_NAME_SIZE];
    hailo_stream_parameters_t stream_params;
} hailo_stream_parameters_by_name_t;

typedef enum {
    HAILO_VSTREAM_STATS_NONE = 0,
    HAILO_VSTREAM_STATS_MAX_ENUM = HAILO_MAX_ENUM
} hailo_vstream_stats_flags_t;

typedef enum {
    HAILO_PIPELINE_ELEM_STATS_NONE = 0,
    HAILO_PIPELINE_ELEM_STATS_MAX_ENUM = HAILO_MAX_ENUM
} hailo_pipeline_elem_stats_flags_t;

typedef struct {
    hailo_format_t user_buffer_format;
    uint32_t timeout_ms;
    uint32_t queue_size;
    hailo_vstream_stats_flags_t vstream_stats_flags;
    hailo_pipeline_elem_stats_flags_t pipeline_elements_stats_flags;
} hailo_vstream_params_t;

typedef struct {
    char name[HAILO_MAX_STREAM_NAME_SIZE];
    hailo_vstream_params_t params;
} hailo_input_vstream_params_by_name_t;

typedef struct {
    char name[HAILO_MAX_STREAM_NAME_SIZE];
    hailo_vstream_params_t params;
} hailo_output_vstream_params_by_name_t;

typedef struct {
    uint32_t height;
    uint32_t width;
    uint32_t features;
} hailo_3d_image_shape_t;

typedef struct {
    uint32_t number_of_classes;
    uint32_t max_bboxes_per_class;
    uint32_t max_bboxes_total;
    uint32_t max_accumulated_mask_size;
} hailo_nms_shape_t;

/* One box of the by-class NMS layout, 0..1 of the input (packed in the header). */
typedef struct {
    float32_t y_min;
    float32_t x_min;
    float32_t y_max;
    float32_t x_max;
    float32_t score;
} hailo_bbox_float32_t;

typedef struct {
    char name[HAILO_MAX_STREAM_NAME_SIZE];
    char network_name[HAILO_MAX_NETWORK_NAME_SIZE];
    hailo_stream_direction_t direction;
    hailo_format_t format;
    union {
        hailo_3d_image_shape_t shape;
        hailo_nms_shape_t nms_shape; /* when format.order is an NMS order */
    };
    hailo_quant_info_t quant_info;
} hailo_vstream_info_t;

typedef enum {
    HAILO_POWER_MODE_PERFORMANCE = 0,
    HAILO_POWER_MODE_ULTRA_PERFORMANCE = 1,
    HAILO_POWER_MODE_MAX_ENUM = HAILO_MAX_ENUM
} hailo_power_mode_t;

typedef enum {
    HAILO_LATENCY_NONE = 0,
    HAILO_LATENCY_MAX_ENUM = HAILO_MAX_ENUM
} hailo_latency_measurement_flags_t;

typedef struct {
    uint16_t batch_size;
} hailo_network_parameters_t;

typedef struct {
    char name[HAILO_MAX_NETWORK_NAME_SIZE];
    hailo_network_parameters_t network_params;
} hailo_network_parameters_by_name_t;

typedef struct {
    char name[HAILO_MAX_NETWORK_GROUP_NAME_SIZE];
    uint16_t batch_size;
    hailo_power_mode_t power_mode;
    hailo_latency_measurement_flags_t latency;
    size_t stream_params_by_name_count;
    hailo_stream_parameters_by_name_t stream_params_by_name[HAILO_MAX_STREAMS_COUNT];
    size_t network_params_by_name_count;
    hailo_network_parameters_by_name_t network_params_by_name[HAILO_MAX_NETWORKS_IN_NETWORK_GROUP];
} hailo_configure_network_group_params_t;

/* 84 488 bytes: allocated, never on a worker's stack. */
typedef struct {
    size_t network_group_params_count;
    hailo_configure_network_group_params_t network_group_params[HAILO_MAX_NETWORK_GROUPS];
} hailo_configure_params_t;

/* The functions, as HAILORTAPI declares them.  The X-macro lists each with
 * its return type and parameters once: hailort_lib.c builds its table of
 * pointers from it, and the test double (tests/hailo_fake) checks its
 * definitions against the same prototypes. */
#define HAILORT_FUNCTIONS(X)                                                                                           \
    X(hailo_get_library_version, (hailo_version_t * version))                                                          \
    X(hailo_init_vdevice_params, (hailo_vdevice_params_t * params))                                                    \
    X(hailo_create_vdevice, (hailo_vdevice_params_t * params, hailo_vdevice * vdevice))                                \
    X(hailo_release_vdevice, (hailo_vdevice vdevice))                                                                  \
    X(hailo_get_physical_devices, (hailo_vdevice vdevice, hailo_device * devices, size_t * number_of_devices))         \
    X(hailo_identify, (hailo_device device, hailo_device_identity_t * device_identity))                                \
    X(hailo_get_chip_temperature, (hailo_device device, hailo_chip_temperature_info_t * temp_info))                    \
    X(hailo_power_measurement, (hailo_device device, hailo_dvm_options_t dvm,                                          \
                                hailo_power_measurement_types_t measurement_type, float32_t * measurement))            \
    X(hailo_create_hef_file, (hailo_hef * hef, const char *file_name))                                                 \
    X(hailo_release_hef, (hailo_hef hef))                                                                              \
    X(hailo_init_configure_params_by_vdevice, (hailo_hef hef, hailo_vdevice vdevice, hailo_configure_params_t * params)) \
    X(hailo_configure_vdevice, (hailo_vdevice vdevice, hailo_hef hef, hailo_configure_params_t * params,               \
                                hailo_configured_network_group * network_groups, size_t * number_of_network_groups))   \
    X(hailo_shutdown_network_group, (hailo_configured_network_group network_group))                                    \
    X(hailo_set_scheduler_timeout,                                                                                     \
      (hailo_configured_network_group configured_network_group, uint32_t timeout_ms, const char *network_name))        \
    X(hailo_set_scheduler_threshold,                                                                                   \
      (hailo_configured_network_group configured_network_group, uint32_t threshold, const char *network_name))         \
    X(hailo_set_scheduler_priority,                                                                                    \
      (hailo_configured_network_group configured_network_group, uint8_t priority, const char *network_name))           \
    X(hailo_make_input_vstream_params,                                                                                 \
      (hailo_configured_network_group network_group, bool unused, hailo_format_type_t format_type,                     \
       hailo_input_vstream_params_by_name_t * input_params, size_t * input_params_count))                              \
    X(hailo_make_output_vstream_params,                                                                                \
      (hailo_configured_network_group network_group, bool unused, hailo_format_type_t format_type,                     \
       hailo_output_vstream_params_by_name_t * output_params, size_t * output_params_count))                           \
    X(hailo_create_input_vstreams,                                                                                     \
      (hailo_configured_network_group configured_network_group, const hailo_input_vstream_params_by_name_t *inputs_params, \
       size_t inputs_count, hailo_input_vstream *input_vstreams))                                                      \
    X(hailo_create_output_vstreams,                                                                                    \
      (hailo_configured_network_group configured_network_group,                                                        \
       const hailo_output_vstream_params_by_name_t *outputs_params, size_t outputs_count,                              \
       hailo_output_vstream *output_vstreams))                                                                         \
    X(hailo_get_input_vstream_frame_size, (hailo_input_vstream input_vstream, size_t * frame_size))                    \
    X(hailo_get_output_vstream_frame_size, (hailo_output_vstream output_vstream, size_t * frame_size))                  \
    X(hailo_get_input_vstream_info, (hailo_input_vstream input_vstream, hailo_vstream_info_t * vstream_info))          \
    X(hailo_get_output_vstream_info, (hailo_output_vstream output_vstream, hailo_vstream_info_t * vstream_info))       \
    X(hailo_vstream_write_raw_buffer, (hailo_input_vstream input_vstream, const void *buffer, size_t buffer_size))     \
    X(hailo_vstream_read_raw_buffer, (hailo_output_vstream output_vstream, void *buffer, size_t buffer_size))          \
    X(hailo_release_input_vstreams, (const hailo_input_vstream *input_vstreams, size_t inputs_count))                  \
    X(hailo_release_output_vstreams, (const hailo_output_vstream *output_vstreams, size_t outputs_count))

#endif
