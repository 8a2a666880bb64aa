# `cmake --install BUILD --prefix P` installs the programs, the libraries, every public
# header under P/include/cppskynet (the source layout: common/actor/runtime.hpp, ...) and a
# CMake package, so a user's project can
#
#   find_package(cppskynet REQUIRED)
#   add_executable(my-worker main.cpp)           # main() calls csk::worker_main
#   target_link_libraries(my-worker PRIVATE cppskynet::node cppskynet::entity)
#
# and then `cppskynet upgrade --worker ./my-worker` (examples/external does exactly that).
# Targets are exported as cppskynet::<module> (csk_node -> cppskynet::node).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(csk_exported
  csk_base csk_wire csk_log csk_config csk_actor csk_asio csk_net csk_channel
  csk_cluster csk_gate csk_entity csk_lab csk_admin csk_io_pool csk_redis csk_mysql csk_node csk_wire_json
  csk_console_text csk_supervisor_control csk_flags csk_warnings csk_sanitizers)
foreach(t IN LISTS csk_exported)
  string(REGEX REPLACE "^csk_" "" export_name ${t})
  set_target_properties(${t} PROPERTIES EXPORT_NAME ${export_name})
endforeach()

install(TARGETS ${csk_exported} EXPORT cppskynetTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cppskynet)
install(TARGETS cppskynet cppskynet-worker cppskynet-node RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(dir common services worker tools/wire)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cppskynet/${dir}
    FILES_MATCHING PATTERN "*.hpp")
endforeach()
install(EXPORT cppskynetTargets NAMESPACE cppskynet:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cppskynet)
configure_package_config_file(${PROJECT_SOURCE_DIR}/tools/cmake/cppskynetConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cppskynetConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cppskynet)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cppskynetConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cppskynetConfig.cmake ${PROJECT_BINARY_DIR}/cppskynetConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cppskynet)
