"""Restaurant: dishes, staff, reservations and orders; house rules live in the documents."""
from toolorch.synth.domain import (
    Arg,
    Col,
    DbTool,
    Domain,
    Fact,
    Table,
    between,
    code,
    day,
    money,
    person,
    pick,
)

STYLES = ("Grilled", "Roasted", "Braised", "Crispy", "Smoked", "Spicy", "Lemon", "Garlic", "Herb")
BASES = ("Salmon", "Chicken", "Tofu", "Risotto", "Lamb", "Gnocchi", "Cauliflower", "Tart", "Duck", "Soup")

TABLES = (
    Table("dishes", (Col("name", "TEXT", lambda f, r: f"{r.choice(STYLES)} {r.choice(BASES)}", unique=True),
                     Col("course", "TEXT", pick("starter", "main", "dessert")), Col("price", "REAL", money(6, 48)),
                     Col("calories", "INTEGER", between(150, 1200)))),
    Table("staff", (Col("name", "TEXT", person, unique=True), Col("role", "TEXT", pick("server", "server", "host")),
                    Col("hourly_wage", "REAL", money(14, 32)))),
    Table("reservations", (Col("code", "TEXT", code("R", 5), unique=True), Col("guest", "TEXT", person),
                           Col("date", "TEXT", day("2024-01-01", 365)), Col("party_size", "INTEGER", between(1, 10)),
                           Col("server_id", "INTEGER", ref="staff"))),
    Table("orders", (Col("reservation_id", "INTEGER", ref="reservations"), Col("dish_id", "INTEGER", ref="dishes"),
                     Col("quantity", "INTEGER", between(1, 5)))),
)

DISH = Arg("dish", "dishes.name")
RESERVATION = Arg("reservation", "reservations.code")
SERVER = Arg("server", "staff.name")
BILL = "FROM orders o JOIN dishes d ON d.id = o.dish_id JOIN reservations r ON r.id = o.reservation_id"

TOOLS = (
    DbTool("get_dish_price", "Menu price of a dish.", "SELECT price FROM dishes WHERE name = :dish", (DISH,),
           "the menu price of the {dish}", answer_type="number"),
    DbTool("get_dish_calories", "Calories of a dish.", "SELECT calories FROM dishes WHERE name = :dish", (DISH,),
           "the calories in the {dish}", answer_type="number"),
    DbTool("get_dish_course", "Course (starter, main, dessert) of a dish.", "SELECT course FROM dishes WHERE name = :dish",
           (DISH,), "the course the {dish} is served as"),
    DbTool("get_staff_wage", "Hourly wage of a staff member.", "SELECT hourly_wage FROM staff WHERE name = :server",
           (SERVER,), "the hourly wage of {server}", answer_type="number"),
    DbTool("get_reservation_server", "Staff member serving a reservation.",
           "SELECT s.name FROM reservations r JOIN staff s ON s.id = r.server_id WHERE r.code = :reservation",
           (RESERVATION,), "the server of reservation {reservation}", returns="staff.name"),
    DbTool("get_reservation_top_dish", "Dish ordered in the largest quantity at a reservation.",
           f"SELECT d.name {BILL} WHERE r.code = :reservation ORDER BY o.quantity DESC, o.id LIMIT 1",
           (RESERVATION,), "the name of the dish ordered most at reservation {reservation}", returns="dishes.name",
           entity="dish ordered most at reservation {reservation}"),
    DbTool("list_course_dishes", "Names of all dishes of a course, comma-separated.",
           "SELECT group_concat(name, ', ') FROM dishes WHERE course = :course HAVING count(*) > 0",
           (Arg("course", "dishes.course"),), "the dishes served as a {course}", role="list", answer_type="list"),
    DbTool("count_server_reservations", "Number of reservations a staff member has served.",
           "SELECT count(*) FROM reservations r JOIN staff s ON s.id = r.server_id WHERE s.name = :server", (SERVER,),
           "the number of reservations served by {server}", role="aggregate", answer_type="number"),
    DbTool("sum_reservation_bill", "Total bill of a reservation (quantity times menu price).",
           f"SELECT round(sum(o.quantity * d.price), 2) {BILL} WHERE r.code = :reservation", (RESERVATION,),
           "the total bill of reservation {reservation}", role="aggregate", answer_type="number"),
    DbTool("count_dish_orders", "Number of orders that include a dish.",
           "SELECT count(*) FROM orders o JOIN dishes d ON d.id = o.dish_id WHERE d.name = :dish", (DISH,),
           "the number of orders of the {dish}", role="aggregate", answer_type="number"),
    DbTool("max_party_size_by_server", "Largest party a staff member has served.",
           "SELECT max(r.party_size) FROM reservations r JOIN staff s ON s.id = r.server_id WHERE s.name = :server",
           (SERVER,), "the largest party served by {server}", role="aggregate", answer_type="number"),
    DbTool("avg_course_calories", "Average calories of the dishes of a course (2 decimals).",
           "SELECT round(avg(calories), 2) FROM dishes WHERE course = :course", (Arg("course", "dishes.course"),),
           "the average calories of a {course} dish", role="aggregate", answer_type="number"),
    DbTool("list_reservation_orders", "Dishes ordered at a reservation: dish, quantity and price.",
           f"SELECT d.name AS dish, o.quantity, d.price {BILL} WHERE r.code = :reservation ORDER BY o.id",
           (RESERVATION,), "the dishes ordered at reservation {reservation}", role="rows", value_col="quantity"),
)

FACTS = (
    Fact("corkage", "Corkage", "Corkage at {org} is ${v} per bottle.", ("15", "20", "25"),
         "How much is the corkage fee per bottle?", "number"),
    Fact("service", "Service charge", "Parties of six or more pay a {v}% service charge.", ("15", "18", "20"),
         "What service charge do parties of six or more pay, in percent?", "number"),
    Fact("hold", "Table holds", "Tables are held for {v} minutes after the reservation time.", ("10", "15", "20"),
         "For how many minutes is a table held after the reservation time?", "number"),
    Fact("kitchen", "Kitchen hours", "The kitchen takes its last orders at {v}.", ("9 pm", "9:30 pm", "10 pm"),
         "When does the kitchen take its last orders?"),
    Fact("no_show", "No-shows", "No-shows are charged ${v} per guest.", ("10", "20", "25"),
         "How much is the no-show charge per guest?", "number"),
    Fact("max_party", "Large parties", "Online bookings are limited to parties of {v}.", ("8", "10", "12"),
         "What is the largest party that can book online?", "number"),
    Fact("chef", "Our chef", "The head chef of {org} is {v}.", ("Marta Quinn", "Luis Ortega", "Aiko Tanaka"),
         "Who is the head chef?"),
    Fact("cake", "Celebrations", "Bringing your own cake costs ${v} per table.", ("5", "10", "15"),
         "How much does it cost to bring your own cake?", "number"),
    Fact("brunch", "Brunch", "Weekend brunch is served until {v}.", ("2 pm", "3 pm"), "Until when is weekend brunch served?"),
    Fact("gift", "Gift cards", "Gift cards are valid for {v} years.", ("1", "2", "5"),
         "For how many years are gift cards valid?", "number"),
)

DOMAIN = Domain("restaurant", "Menu, staff, reservations and orders of {org}.",
                lambda f, r: f"{f.last_name()}'s Bistro", TABLES, TOOLS, FACTS)
