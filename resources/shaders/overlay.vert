// Tool and gizmo overlay: lines given in window pixels (x right, y down).
uniform vec2 u_size;
attribute vec2 a_position;
attribute vec4 a_color;
varying vec4 v_color;
void main() {
    gl_Position = vec4(2.0 * a_position.x / u_size.x - 1.0, 1.0 - 2.0 * a_position.y / u_size.y, 0.0, 1.0);
    v_color = a_color;
}
