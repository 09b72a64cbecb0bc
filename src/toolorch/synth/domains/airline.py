"""Airline: airports, flights, passengers and bookings; baggage and change rules live in the documents."""
from toolorch.synth.envs import Arg, Col, DbTool, Domain, Fact, Table, between, code, day, money, person, pick

TABLES = (
    Table("airports", (Col("code", "TEXT", lambda f, r: "".join(r.choice("ABCDEFGHJKLMNPRSTUVWXZ") for _ in range(3)),
                           unique=True), Col("city", "TEXT", lambda f, r: f.city()))),
    Table("flights", (Col("number", "TEXT", code("TA", 4), unique=True),
                      Col("origin_id", "INTEGER", ref="airports"), Col("destination_id", "INTEGER", ref="airports"),
                      Col("date", "TEXT", day("2024-03-01", 270)), Col("price", "REAL", money(59, 980)),
                      Col("seats", "INTEGER", pick(76, 120, 150, 180, 220)))),
    Table("passengers", (Col("name", "TEXT", person, unique=True), Col("nationality", "TEXT", lambda f, r: f.country()),
                         Col("miles", "INTEGER", between(0, 250000)))),
    Table("bookings", (Col("flight_id", "INTEGER", ref="flights"), Col("passenger_id", "INTEGER", ref="passengers"),
                       Col("cabin", "TEXT", pick("economy", "economy", "premium", "business")),
                       Col("paid", "REAL", money(59, 2400)))),
)

FLIGHT = Arg("flight", "flights.number")
PASSENGER = Arg("passenger", "passengers.name")
AIRPORT = Arg("airport", "airports.code")
TRIPS = "FROM bookings b JOIN flights f ON f.id = b.flight_id JOIN passengers p ON p.id = b.passenger_id"

TOOLS = (
    DbTool("get_flight_destination", "Destination airport code of a flight.",
           "SELECT a.code FROM flights f JOIN airports a ON a.id = f.destination_id WHERE f.number = :flight",
           (FLIGHT,), "the destination airport code of flight {flight}", returns="airports.code",
           entity="the destination airport of flight {flight}"),
    DbTool("get_flight_origin_city", "City a flight departs from.",
           "SELECT a.city FROM flights f JOIN airports a ON a.id = f.origin_id WHERE f.number = :flight", (FLIGHT,),
           "the departure city of flight {flight}"),
    DbTool("get_airport_city", "City an airport serves, by airport code.", "SELECT city FROM airports WHERE code = :airport",
           (AIRPORT,), "the city served by {airport}"),
    DbTool("get_flight_price", "Base fare of a flight.", "SELECT price FROM flights WHERE number = :flight", (FLIGHT,),
           "the base fare of flight {flight}", answer_type="number"),
    DbTool("get_flight_date", "Date of a flight.", "SELECT date FROM flights WHERE number = :flight", (FLIGHT,),
           "the date of flight {flight}"),
    DbTool("get_passenger_miles", "Frequent-flyer miles of a passenger.",
           "SELECT miles FROM passengers WHERE name = :passenger", (PASSENGER,),
           "the frequent-flyer miles of {passenger}", answer_type="number"),
    DbTool("get_passenger_nationality", "Nationality of a passenger.",
           "SELECT nationality FROM passengers WHERE name = :passenger", (PASSENGER,), "the nationality of {passenger}"),
    DbTool("get_latest_flight", "Flight number of a passenger's latest booked flight.",
           f"SELECT f.number {TRIPS} WHERE p.name = :passenger ORDER BY f.date DESC, f.id DESC LIMIT 1", (PASSENGER,),
           "the number of the latest flight {passenger} is booked on", returns="flights.number",
           entity="the latest flight {passenger} is booked on"),
    DbTool("list_passenger_flights", "Numbers of all flights a passenger is booked on, comma-separated.",
           f"SELECT group_concat(f.number, ', ') {TRIPS} WHERE p.name = :passenger HAVING count(*) > 0",
           (PASSENGER,), "the flights {passenger} is booked on", role="list", answer_type="list"),
    DbTool("count_flight_bookings", "Number of bookings on a flight.",
           "SELECT count(*) FROM bookings b JOIN flights f ON f.id = b.flight_id WHERE f.number = :flight", (FLIGHT,),
           "the number of bookings on flight {flight}", role="aggregate", answer_type="number"),
    DbTool("sum_passenger_paid", "Total a passenger has paid over all bookings.",
           f"SELECT round(sum(b.paid), 2) {TRIPS} WHERE p.name = :passenger", (PASSENGER,),
           "the total amount {passenger} has paid for bookings", role="aggregate", answer_type="number"),
    DbTool("count_airport_departures", "Number of flights departing from an airport.",
           "SELECT count(*) FROM flights f JOIN airports a ON a.id = f.origin_id WHERE a.code = :airport", (AIRPORT,),
           "the number of flights departing from {airport}", role="aggregate", answer_type="number"),
    DbTool("avg_fare_from_airport", "Average base fare of flights departing from an airport (2 decimals).",
           "SELECT round(avg(f.price), 2) FROM flights f JOIN airports a ON a.id = f.origin_id WHERE a.code = :airport",
           (AIRPORT,), "the average base fare of flights departing from {airport}", role="aggregate",
           answer_type="number"),
    DbTool("list_flight_bookings", "Bookings on a flight: passenger, cabin and amount paid.",
           f"SELECT p.name AS passenger, b.cabin, b.paid {TRIPS} WHERE f.number = :flight ORDER BY b.id", (FLIGHT,),
           "the bookings on flight {flight}", role="rows", value_col="paid"),
)

FACTS = (
    Fact("bag_fee", "Checked baggage", "The first checked bag on {org} costs ${v}; the second costs twice as much.",
         ("30", "35", "40"), "How much does the first checked bag cost?", "number"),
    Fact("carry_on", "Carry-on", "Carry-on bags may weigh at most {v} kg.", ("7", "8", "10"),
         "What is the maximum weight of a carry-on bag in kg?", "number"),
    Fact("change_fee", "Changes", "Changing an economy ticket costs ${v} plus any fare difference.",
         ("75", "100", "150"), "How much does it cost to change an economy ticket?", "number"),
    Fact("checkin", "Check-in", "Online check-in opens {v} hours before departure.", ("24", "36", "48"),
         "How many hours before departure does online check-in open?", "number"),
    Fact("boarding", "Boarding", "Boarding gates close {v} minutes before departure.", ("15", "20", "25"),
         "How many minutes before departure do gates close?", "number"),
    Fact("refund", "Refunds", "Refunds reach the original card within {v} business days.", ("5", "7", "10"),
         "Within how many business days do refunds arrive?", "number"),
    Fact("pets", "Pets", "Small pets travel in the cabin for ${v} each way.", ("95", "125", "150"),
         "How much does it cost to bring a small pet in the cabin, each way?", "number"),
    Fact("gold_tier", "Loyalty tiers", "Gold status on {org} requires {v} miles in a calendar year.",
         ("50000", "75000", "100000"), "How many miles are needed for gold status?", "number"),
    Fact("lounge", "Lounges", "Business passengers may use the {v} lounge at hub airports.",
         ("Horizon", "Skyline", "Meridian"), "What is the name of the lounge for business passengers?"),
    Fact("infant", "Infants", "Infants under {v} years fly free on a parent's lap.", ("2",),
         "Under what age do infants fly free on a lap?", "number"),
)

DOMAIN = Domain("airline", "Flights, passengers and bookings of {org}.",
                lambda f, r: f"{f.last_name()} Air", TABLES, TOOLS, FACTS)
