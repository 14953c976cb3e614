/*
 * test_hailort_abi.c - pins the size, alignment and field offsets of every
 * HailoRT structure vigil passes across the dlopen boundary
 * (src/backends/hailo/hailort_abi.h), so that an edit to our declarations
 * that would no longer match libhailort fails here, not on a card.
 *
 * How the numbers were derived: hailort.h and platform.h of hailo-ai/hailort
 * at tag v4.23.0 (hailort/libhailort/include/hailo/; v4.21.0 and v4.22.0 are
 * byte-identical) were compiled on x86_64 Linux with gcc -std=gnu17 into a
 * probe printing sizeof, _Alignof and offsetof of each structure and field
 * below; those printed values are written here by hand.  The same values
 * hold on aarch64 Linux (LP64, same alignment of int, pointer and size_t).
 */
#include <stddef.h>

#include "backends/hailo/hailort_abi.h"
#include "backends/hailo/hailort_lib.h"
#include "testing.h"

#define SIZE(t, n, a)                                                                                                  \
    do {                                                                                                               \
        CHECK_EQ_INT((long)sizeof(t), (long)(n));                                                                      \
        CHECK_EQ_INT((long)_Alignof(t), (long)(a));                                                                    \
    } while (0)
#define OFF(t, f, n) CHECK_EQ_INT((long)offsetof(t, f), (long)(n))

static void test_scalars_and_enums(void) {
    SIZE(hailo_status, 4, 4);
    SIZE(hailo_format_order_t, 4, 4);
    SIZE(hailo_scheduling_algorithm_t, 4, 4);
    SIZE(hailo_device_architecture_t, 4, 4);
    SIZE(hailo_dvm_options_t, 4, 4);
    SIZE(hailo_power_measurement_types_t, 4, 4);
    SIZE(bool, 1, 1);
    CHECK_EQ_INT(HAILO_FORMAT_ORDER_HAILO_NMS, 9);
    CHECK_EQ_INT(HAILO_FORMAT_ORDER_HAILO_NMS_BY_CLASS, 22);
    CHECK_EQ_INT(HAILO_SCHEDULING_ALGORITHM_ROUND_ROBIN, 1);
    CHECK_EQ_INT(HAILO_FORMAT_TYPE_FLOAT32, 3);
    CHECK_EQ_INT(HAILO_ARCH_HAILO8, 1);
    CHECK_EQ_INT(HAILO_DEVICE_IN_USE, 73);
    CHECK_EQ_INT(HAILO_STREAM_ABORT, 63);
    CHECK_EQ_INT(HAILO_DVM_OPTIONS_OVERCURRENT_PROTECTION, 9);
}

static void test_version_and_device(void) {
    SIZE(hailo_version_t, 12, 4);
    SIZE(hailo_device_id_t, 32, 1);
    SIZE(hailo_vdevice_params_t, 40, 8);
    OFF(hailo_vdevice_params_t, device_count, 0);
    OFF(hailo_vdevice_params_t, device_ids, 8);
    OFF(hailo_vdevice_params_t, scheduling_algorithm, 16);
    OFF(hailo_vdevice_params_t, group_id, 24);
    OFF(hailo_vdevice_params_t, multi_process_service, 32);
    SIZE(hailo_firmware_version_t, 12, 4);
    SIZE(hailo_device_identity_t, 140, 4);
    OFF(hailo_device_identity_t, protocol_version, 0);
    OFF(hailo_device_identity_t, fw_version, 4);
    OFF(hailo_device_identity_t, logger_version, 16);
    OFF(hailo_device_identity_t, board_name_length, 20);
    OFF(hailo_device_identity_t, board_name, 21);
    OFF(hailo_device_identity_t, is_release, 53);
    OFF(hailo_device_identity_t, extended_context_switch_buffer, 54);
    OFF(hailo_device_identity_t, device_architecture, 56);
    OFF(hailo_device_identity_t, serial_number_length, 60);
    OFF(hailo_device_identity_t, serial_number, 61);
    OFF(hailo_device_identity_t, part_number_length, 77);
    OFF(hailo_device_identity_t, part_number, 78);
    OFF(hailo_device_identity_t, product_name_length, 94);
    OFF(hailo_device_identity_t, product_name, 95);
    SIZE(hailo_chip_temperature_info_t, 12, 4);
    OFF(hailo_chip_temperature_info_t, ts1_temperature, 4);
    OFF(hailo_chip_temperature_info_t, sample_count, 8);
}

static void test_vstreams(void) {
    SIZE(hailo_format_t, 12, 4);
    OFF(hailo_format_t, type, 0);
    OFF(hailo_format_t, order, 4);
    OFF(hailo_format_t, flags, 8);
    SIZE(hailo_3d_image_shape_t, 12, 4);
    SIZE(hailo_nms_shape_t, 16, 4);
    OFF(hailo_nms_shape_t, max_bboxes_total, 8);
    OFF(hailo_nms_shape_t, max_accumulated_mask_size, 12);
    SIZE(hailo_quant_info_t, 16, 4);
    SIZE(hailo_vstream_info_t, 436, 4);
    OFF(hailo_vstream_info_t, name, 0);
    OFF(hailo_vstream_info_t, network_name, 128);
    OFF(hailo_vstream_info_t, direction, 388);
    OFF(hailo_vstream_info_t, format, 392);
    OFF(hailo_vstream_info_t, shape, 404);
    OFF(hailo_vstream_info_t, nms_shape, 404);
    OFF(hailo_vstream_info_t, quant_info, 420);
    SIZE(hailo_vstream_params_t, 28, 4);
    OFF(hailo_vstream_params_t, user_buffer_format, 0);
    OFF(hailo_vstream_params_t, timeout_ms, 12);
    OFF(hailo_vstream_params_t, queue_size, 16);
    OFF(hailo_vstream_params_t, vstream_stats_flags, 20);
    OFF(hailo_vstream_params_t, pipeline_elements_stats_flags, 24);
    SIZE(hailo_input_vstream_params_by_name_t, 156, 4);
    OFF(hailo_input_vstream_params_by_name_t, params, 128);
    SIZE(hailo_output_vstream_params_by_name_t, 156, 4);
    OFF(hailo_output_vstream_params_by_name_t, params, 128);
    /* packed in the header (align 1): read with memcpy only */
    CHECK_EQ_INT((long)sizeof(hailo_bbox_float32_t), 20);
}

static void test_configure_params(void) {
    SIZE(hailo_stream_parameters_t, 80, 4);
    OFF(hailo_stream_parameters_t, stream_interface, 0);
    OFF(hailo_stream_parameters_t, direction, 4);
    OFF(hailo_stream_parameters_t, flags, 8);
    OFF(hailo_stream_parameters_t, interface_params, 12);
    SIZE(hailo_stream_parameters_by_name_t, 208, 4);
    OFF(hailo_stream_parameters_by_name_t, stream_params, 128);
    SIZE(hailo_network_parameters_t, 2, 2);
    SIZE(hailo_network_parameters_by_name_t, 260, 2);
    OFF(hailo_network_parameters_by_name_t, network_params, 258);
    SIZE(hailo_configure_network_group_params_t, 10560, 8);
    OFF(hailo_configure_network_group_params_t, name, 0);
    OFF(hailo_configure_network_group_params_t, batch_size, 128);
    OFF(hailo_configure_network_group_params_t, power_mode, 132);
    OFF(hailo_configure_network_group_params_t, latency, 136);
    OFF(hailo_configure_network_group_params_t, stream_params_by_name_count, 144);
    OFF(hailo_configure_network_group_params_t, stream_params_by_name, 152);
    OFF(hailo_configure_network_group_params_t, network_params_by_name_count, 8472);
    OFF(hailo_configure_network_group_params_t, network_params_by_name, 8480);
    SIZE(hailo_configure_params_t, 84488, 8);
    OFF(hailo_configure_params_t, network_group_params, 8);
}

/* The supported range is the one these layouts were taken from. */
static void test_supported_range(void) {
    CHECK_EQ_INT(HAILORT_SUPPORTED_MAJOR, 4);
    CHECK_EQ_INT(HAILORT_SUPPORTED_MINOR_MIN, 21);
    CHECK_EQ_INT(HAILORT_SUPPORTED_MINOR_MAX, 23);
}

int main(void) {
    RUN(test_scalars_and_enums);
    RUN(test_version_and_device);
    RUN(test_vstreams);
    RUN(test_configure_params);
    RUN(test_supported_range);
    return testing_report();
}
